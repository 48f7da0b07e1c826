"""Offline test models and tokenizers: a random-init tiny GPT-2 and GPT-2's tokenizer from the A1 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers  # noqa: F401  (imported at collection: its slow first import would otherwise land in a test)
from cs336_basics.shared_data import SharedDataUnavailable, shared_path

A1_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"
A5_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment5-alignment/main/tests/fixtures/"


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
