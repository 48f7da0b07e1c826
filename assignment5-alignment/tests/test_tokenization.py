"""Prompt/output tokenisation with GPT-2's tokenizer, checked against per-example encodings; the EOS text that ends
SFT targets, for Hugging Face and ``cs336_basics`` tokenizers."""

import torch
from cs336_alignment.math_data import arithmetic_word_problems, r1_zero_prompt, r1_zero_target
from cs336_alignment.tokenization import (
    encode_texts,
    end_with_eos,
    eos_text,
    eos_token_id,
    tokenize_prompt_and_output,
)

PROMPTS = ["Hello, world!", "This is a longer test prompt here.", "Q:"]
OUTPUTS = [" Hi there.", " And a reply", " 42 is the answer to everything, obviously."]


def test_shapes_padding_and_response_mask(gpt2_tokenizer):
    out = tokenize_prompt_and_output(PROMPTS, OUTPUTS, gpt2_tokenizer)
    seqs = [gpt2_tokenizer.encode(p) + gpt2_tokenizer.encode(o) for p, o in zip(PROMPTS, OUTPUTS)]
    max_len = max(map(len, seqs))
    pad = gpt2_tokenizer.eos_token_id  # GPT-2 has no pad token
    for key in ("input_ids", "labels", "response_mask"):
        assert out[key].shape == (3, max_len - 1)
    for row, (p, o) in enumerate(zip(PROMPTS, OUTPUTS)):
        full = seqs[row] + [pad] * (max_len - len(seqs[row]))
        assert out["input_ids"][row].tolist() == full[:-1]
        assert out["labels"][row].tolist() == full[1:]
        n_prompt, n_out = len(gpt2_tokenizer.encode(p)), len(gpt2_tokenizer.encode(o))
        expected = [n_prompt - 1 <= j < n_prompt - 1 + n_out for j in range(max_len - 1)]
        assert out["response_mask"][row].tolist() == expected
        masked_labels = out["labels"][row][out["response_mask"][row]].tolist()
        assert gpt2_tokenizer.decode(masked_labels) == o
    assert out["response_mask"].dtype == torch.bool


def test_sft_target_with_eos_text_ends_in_the_eos_id_as_a_trained_label(gpt2_tokenizer):
    problem = arithmetic_word_problems(1, seed=0)[0]
    target = r1_zero_target(problem, eos_text(gpt2_tokenizer))
    assert target.endswith("</answer><|endoftext|>")
    batch = tokenize_prompt_and_output([r1_zero_prompt(problem.question)], [target], gpt2_tokenizer)
    trained = batch["labels"][0][batch["response_mask"][0]]
    assert trained[-1].item() == gpt2_tokenizer.eos_token_id
    assert gpt2_tokenizer.decode(trained[-4:-1].tolist()).endswith("</answer>")


def test_a_basics_tokenizers_eos_text_encodes_to_its_eos_id(arith_tokenizer):
    assert encode_texts(arith_tokenizer, [eos_text(arith_tokenizer)]) == [[eos_token_id(arith_tokenizer)]]


def test_end_with_eos_appends_it_once(gpt2_tokenizer):
    assert end_with_eos(" <answer> 4 </answer>", gpt2_tokenizer) == " <answer> 4 </answer><|endoftext|>"
    assert end_with_eos(" <answer> 4 </answer><|endoftext|>", gpt2_tokenizer) == " <answer> 4 </answer><|endoftext|>"


def test_end_with_eos_leaves_text_alone_for_a_tokenizer_without_eos():
    class NoEOS:
        eos_token = None

    assert end_with_eos(" <answer> 4 </answer>", NoEOS()) == " <answer> 4 </answer>"
