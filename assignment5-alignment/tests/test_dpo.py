"""Per-instance DPO loss against an independent computation on two tiny GPT-2 models."""

import math

import pytest
import torch
from cs336_alignment.dpo import _split_hh_conversation, per_instance_dpo_loss
from cs336_alignment.prompts import load_prompt

PROMPT, CHOSEN, REJECTED = "The quick brown fox jumps over", "the lazy dog.", "their crazy frog."


def _logp(model, tokenizer, text):
    ids = tokenizer.encode(text) + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    return sum(torch.log_softmax(logits[t], -1)[ids[t + 1]].item() for t in range(len(ids) - 1))


def test_dpo_loss_matches_independent_computation(tiny_gpt2, tiny_gpt2_ref, gpt2_tokenizer):
    template = load_prompt("alpaca_sft")
    texts = [template.replace("{instruction}", PROMPT).replace("{response}", r) for r in (CHOSEN, REJECTED)]
    pc, pr = (_logp(tiny_gpt2, gpt2_tokenizer, t) for t in texts)
    rc, rr = (_logp(tiny_gpt2_ref, gpt2_tokenizer, t) for t in texts)
    beta = 0.5
    expected = math.log1p(math.exp(-beta * ((pc - rc) - (pr - rr))))
    got = per_instance_dpo_loss(tiny_gpt2, tiny_gpt2_ref, gpt2_tokenizer, beta, PROMPT, CHOSEN, REJECTED)
    assert got.dim() == 0
    assert got.item() == pytest.approx(expected, abs=1e-4)


def test_dpo_loss_is_log2_against_itself_and_trains_only_the_policy(tiny_gpt2, tiny_gpt2_ref, gpt2_tokenizer):
    same = per_instance_dpo_loss(tiny_gpt2, tiny_gpt2, gpt2_tokenizer, 0.1, PROMPT, CHOSEN, REJECTED)
    assert same.item() == pytest.approx(math.log(2), abs=1e-5)
    loss = per_instance_dpo_loss(tiny_gpt2, tiny_gpt2_ref, gpt2_tokenizer, 0.1, PROMPT, CHOSEN, REJECTED)
    loss.backward()
    assert tiny_gpt2.transformer.wte.weight.grad is not None
    assert tiny_gpt2_ref.transformer.wte.weight.grad is None
    tiny_gpt2.zero_grad(set_to_none=True)


def test_hh_conversation_split_keeps_single_turn_only():
    single = "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast."
    multi = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant: Bye"
    assert _split_hh_conversation(single) == ("How do I bake bread?", "Mix flour, water, yeast.")
    assert _split_hh_conversation(multi) is None
