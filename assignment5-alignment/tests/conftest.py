"""Offline test models and tokenizers: a random-init tiny GPT-2 and GPT-2's tokenizer from the A1 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers  # noqa: F401  (imported at collection: its slow first import would otherwise land in a test)
from cs336_alignment.loop_configs import GRPOConfig
from cs336_alignment.math_data import MathProblem
from cs336_alignment.math_eval import R1_ZERO_STOP, PromptStyle
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path
from transformers import LlamaConfig, LlamaForCausalLM

A1_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"
A5_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment5-alignment/main/tests/fixtures/"

# The test models are tiny: one thread is as fast, and far faster when other jobs share the cores.
torch.set_num_threads(1)


def shared_or_skip(relative: str, url: str | None = None) -> Path:
    try:
        return shared_path(relative, url=url)
    except SharedDataUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    """GPT-2's byte-level BPE tokenizer built from the course's vocab/merges files."""
    from cs336_alignment.models import gpt2_tokenizer_from_files

    vocab = shared_or_skip("fixtures/assignment1/gpt2_vocab.json", A1_FIXTURES_URL + "gpt2_vocab.json")
    merges = shared_or_skip("fixtures/assignment1/gpt2_merges.txt", A1_FIXTURES_URL + "gpt2_merges.txt")
    return gpt2_tokenizer_from_files(vocab, merges)


def _tiny_gpt2(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config_path = shared_or_skip(
        "fixtures/assignment5/tiny-gpt2/config.json", A5_FIXTURES_URL + "tiny-gpt2/config.json"
    )
    config = GPT2Config.from_json_file(str(config_path))
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def tiny_gpt2():
    """The suite's tiny GPT-2 architecture (2 layers, d=128) with random weights, in eval mode (no dropout)."""
    return _tiny_gpt2(0)


@pytest.fixture(scope="session")
def tiny_gpt2_ref():
    return _tiny_gpt2(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_gpt2, gpt2_tokenizer, tmp_path_factory):
    """The tiny random GPT-2 saved as a checkpoint directory, loadable through ``--policy.model``; the experiments
    that load it also read GSM8K, so it skips without the shared data."""
    from cs336_alignment.models import save_policy
    from cs336_alignment.run_config import PolicyConfig

    for split in ("train", "test"):
        shared_or_skip(f"data/gsm8k/{split}.jsonl")
    directory = tmp_path_factory.mktemp("policy") / "tiny"
    save_policy(tiny_gpt2, gpt2_tokenizer, directory)
    return PolicyConfig(model=str(directory), device="cpu", backend="kv_cache", static_cache=False)


TINY_CHECKPOINT_GRPO = GRPOConfig(
    n_grpo_steps=1,
    rollout_batch_size=4,
    group_size=2,
    train_batch_size=4,
    gradient_accumulation_steps=2,
    sampling_max_tokens=4,
    sampling_min_tokens=1,
)
"""GRPO small enough for ``tiny_checkpoint`` runs on GSM8K: 2 questions x 2 samples of at most 4 tokens a step."""


@pytest.fixture(scope="session")
def arith_tokenizer(tmp_path_factory):
    """A ``cs336_basics`` byte-level BPE tokenizer trained on procedural word problems (no shared data needed)."""
    from cs336_alignment.math_data import arithmetic_word_problems, r1_zero_target
    from cs336_basics.bpe import train_bpe
    from cs336_basics.tokenizer import Tokenizer

    corpus = tmp_path_factory.mktemp("bpe") / "corpus.txt"
    problems = arithmetic_word_problems(300, seed=0, max_number=9)
    corpus.write_text("<|endoftext|>".join(f"Q: {p.question}\nA: <think>{r1_zero_target(p)}" for p in problems))
    vocab, merges = train_bpe(corpus, 320, ["<|endoftext|>"])
    return Tokenizer(vocab, merges, special_tokens=["<|endoftext|>"])


ITEM_PROBLEMS = [MathProblem(f"Q: item {i}", "0") for i in range(8)]
"""Eight questions for loop tests on the arithmetic tokenizer; the rewards under test ignore the answer."""


def item_prompt(question: str) -> str:
    return question + "\nA: <think>"


def item_style(reward_fn) -> PromptStyle:
    """``item_prompt`` with ``reward_fn`` and r1_zero's stop: the prompt style of loop tests on ITEM_PROBLEMS."""
    return PromptStyle("item", item_prompt, reward_fn, R1_ZERO_STOP)


def tiny_basics_lm(vocab_size: int, seed: int = 0):
    from cs336_basics.model import TransformerLM
    from cs336_basics.model_config import ModelConfig

    torch.manual_seed(seed)
    return TransformerLM(
        ModelConfig(vocab_size=vocab_size, context_length=256, d_model=32, num_layers=2, num_heads=2, d_ff=64)
    )


def tiny_llama(seed: int = 0):
    """A random Llama (the SmolLM2 architecture) small enough for unit tests: RoPE, GQA, tied embeddings."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()
