"""tokenize_to_memmap: parallel chunked encoding must equal tiktoken's encoding of the whole file."""

from __future__ import annotations

import numpy as np
import pytest
from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer

from .conftest import fixture_path

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return Tokenizer.from_files(fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt"), [EOT])


def read_bin(path) -> np.ndarray:
    return np.memmap(path, dtype=np.uint16, mode="r")


def test_parallel_chunks_at_endoftext_equal_tiktoken(tmp_path, gpt2_tokenizer, gpt2_encoding):
    source = fixture_path("tinystories_sample_5M.txt")
    out = tmp_path / "tokens.bin"
    count = tokenize_to_memmap(source, gpt2_tokenizer, out, num_workers=2, chunk_bytes=256 << 10)
    expected = gpt2_encoding.encode(source.read_text(encoding="utf-8"), allowed_special={EOT})
    assert count == len(expected)
    assert out.stat().st_size == 2 * len(expected)
    np.testing.assert_array_equal(read_bin(out), np.asarray(expected))


def test_whitespace_cuts_without_special_tokens_equal_tiktoken(tmp_path, gpt2_tokenizer, gpt2_encoding):
    """corpus.en has no <|endoftext|>: every cut is a whitespace cut, including inside runs of newlines."""
    text = fixture_path("corpus.en").read_text(encoding="utf-8") + "\n\n\n  end\n\n\n\n"
    source = tmp_path / "corpus.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "corpus.bin"
    count = tokenize_to_memmap(source, gpt2_tokenizer, out, num_workers=2, chunk_bytes=997)
    expected = gpt2_encoding.encode(text)
    assert count == len(expected)
    np.testing.assert_array_equal(read_bin(out), np.asarray(expected))


def test_single_worker_and_progress_give_the_same_file(tmp_path, gpt2_tokenizer, gpt2_encoding):
    source = fixture_path("tinystories_sample.txt")
    out = tmp_path / "one.bin"
    tokenize_to_memmap(source, gpt2_tokenizer, out, num_workers=1, chunk_bytes=100, progress=True)
    expected = gpt2_encoding.encode(source.read_text(encoding="utf-8"), allowed_special={EOT})
    np.testing.assert_array_equal(read_bin(out), np.asarray(expected))


def test_vocab_beyond_uint16_is_a_clear_error_and_writes_nothing(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)} | {70_000: b"big"}
    tokenizer = Tokenizer(vocab, [])
    source = tmp_path / "t.txt"
    source.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="uint16"):
        tokenize_to_memmap(source, tokenizer, tmp_path / "t.bin")
    assert list(tmp_path.iterdir()) == [source]


def test_missing_input_is_a_clear_error(tmp_path, gpt2_tokenizer):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tokenize_to_memmap(tmp_path / "nope.txt", gpt2_tokenizer, tmp_path / "t.bin")
