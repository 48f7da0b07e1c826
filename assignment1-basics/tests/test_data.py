"""get_batch: window distribution, next-token labels, dtypes, devices; load_tokens and check_token_ids checks."""

import numpy as np
import pytest
import torch
from cs336_basics.data import check_token_ids, get_batch, load_tokens


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = np.arange(100)
    x, y = get_batch(data, batch_size=32, context_length=7, device="cpu")
    assert x.shape == y.shape == (32, 7) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)
    assert torch.equal(x - x[:, :1], torch.arange(7).expand(32, 7))  # contiguous windows


def test_get_batch_start_indices_are_uniform_over_the_full_range():
    data, ctx, n_draws, batch = np.arange(100), 7, 1000, 32
    rng = np.random.default_rng(0)
    starts = np.concatenate([get_batch(data, batch, ctx, "cpu", rng)[0][:, 0].numpy() for _ in range(n_draws)])
    counts = np.bincount(starts, minlength=100)
    n_starts = len(data) - ctx  # 0 … 92 inclusive
    assert counts[:n_starts].min() > 0 and counts[n_starts:].sum() == 0
    mean = n_draws * batch / n_starts
    sigma = np.sqrt(n_draws * batch * (1 / n_starts) * (1 - 1 / n_starts))
    assert np.all(np.abs(counts[:n_starts] - mean) < 5 * sigma)


def test_get_batch_reads_uint16_memmap_as_int64(tmp_path):
    path = tmp_path / "tokens.bin"
    np.arange(60000, 60300, dtype=np.uint16).tofile(path)
    tokens = load_tokens(path)
    x, y = get_batch(tokens, 4, 16, "cpu", np.random.default_rng(1))
    assert x.dtype == torch.int64 and int(x.min()) >= 60000 and torch.equal(y, x + 1)


def test_get_batch_raises_on_unavailable_device():
    with pytest.raises((RuntimeError, AssertionError)):
        get_batch(np.arange(100), 2, 4, "cuda:99")


def test_get_batch_rejects_too_short_dataset():
    with pytest.raises(ValueError, match="too short"):
        get_batch(np.arange(5), 2, 5, "cpu")


def test_load_tokens_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokens(tmp_path / "missing.bin")
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"abc")
    with pytest.raises(ValueError, match="even size"):
        load_tokens(odd)


def test_check_token_ids_finds_the_first_bad_id_in_any_chunk():
    tokens = np.arange(1000) % 50
    check_token_ids(tokens, 50, "ok.bin", chunk_tokens=64)
    tokens[[700, 900]] = [50, 60]
    with pytest.raises(ValueError, match=r"bad\.bin: token 700 is id 50, outside the vocabulary \[0, 50\)"):
        check_token_ids(tokens, 50, "bad.bin", chunk_tokens=64)
    tokens[[700, 900]] = [0, -1]
    with pytest.raises(ValueError, match="token 900 is id -1"):
        check_token_ids(tokens, 50, chunk_tokens=7)
    check_token_ids(np.zeros(0, dtype=np.uint16), 1)
    with pytest.raises(ValueError, match="vocab_size must be positive"):
        check_token_ids(tokens, 0)
