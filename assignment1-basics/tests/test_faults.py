"""Fault injection and hostile input: each probe once found a defect (issue 19) and must keep failing cleanly.

Every probe is sized to be fast on a busy machine, and none measures time: the streaming probe counts the
characters the tokenizer searches, which is what grew quadratically.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch
from cs336_basics import checkpoint
from cs336_basics.bpe import train_bpe
from cs336_basics.checkpoint import CorruptCheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from cs336_basics.data import check_token_ids, load_tokens
from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import atomic_output, temporary_prefix
from cs336_basics.vocab_files import load_vocab_merges

from .conftest import fixture_path

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2_files():
    return fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt")


class SearchCountingTokenizer(Tokenizer):
    """Counts the characters ``encode_iterable`` searches for a place to cut."""

    searched = 0

    def _last_stream_cut(self, buffer: str) -> int:
        self.searched += len(buffer)
        return super()._last_stream_cut(buffer)


# 1. encode_iterable on long text without a safe cut


@pytest.mark.parametrize("special_tokens", [[], [EOT]])
@pytest.mark.parametrize("unit", ["\n", " \t", "\r\n"])
def test_stream_of_whitespace_is_searched_in_linear_time(gpt2_files, special_tokens, unit):
    """Whitespace has no safe cut: re-searching the whole buffer for every line was quadratic (30 s for 280 k)."""
    tokenizer = SearchCountingTokenizer.from_files(*gpt2_files, special_tokens=special_tokens)
    tokenizer.stream_chunk_chars = 64
    lines = [unit] * 20_000
    total = len(unit) * len(lines)
    assert list(tokenizer.encode_iterable(lines)) == tokenizer.encode("".join(lines))
    assert tokenizer.searched <= 4 * total


def test_stream_with_long_uncuttable_runs_between_words_stays_exact_and_linear(gpt2_files):
    tokenizer = SearchCountingTokenizer.from_files(*gpt2_files, special_tokens=[EOT])
    tokenizer.stream_chunk_chars = 50
    pieces = []
    for i in range(200):
        pieces += ["word "] + ["\n"] * (i * 7 % 300) + [EOT if i % 5 == 0 else "x"]
    text = "".join(pieces)
    assert list(tokenizer.encode_iterable(pieces)) == tokenizer.encode(text)
    assert tokenizer.searched <= 6 * len(text)


# 2. checkpoints: bit flips, empty and truncated files, killed writers


def _model_and_optimizer(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(3, 16)).sum().backward()
    optimizer.step()
    return model, optimizer


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_flipped_byte_in_a_weight_is_an_error_not_a_changed_model(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, optimizer, 7, path)
    data = bytearray(path.read_bytes())
    weight = model[1].weight.detach().numpy().tobytes()
    offset = data.find(weight)
    assert offset > 0  # torch stores tensors uncompressed
    data[offset + 5] ^= 0x10
    path.write_bytes(bytes(data))
    fresh, fresh_optimizer = _model_and_optimizer(seed=1)
    with pytest.raises(CorruptCheckpointError, match=f"{path.name} is corrupt"):
        load_checkpoint(path, fresh, fresh_optimizer)


def test_every_flipped_byte_is_detected_or_harmless(tmp_path):
    """Wherever a byte flips (zip headers, pickle, tensors), loading raises a clear error or gives the saved state."""
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, optimizer, 7, path, extra={"note": "run 1"})
    original = path.read_bytes()
    saved = read_checkpoint(path)
    damaged = tmp_path / "damaged.pt"
    for offset in range(0, len(original), 53):
        data = bytearray(original)
        data[offset] ^= 0x01
        damaged.write_bytes(bytes(data))
        try:
            loaded = read_checkpoint(damaged)
        except CorruptCheckpointError as err:
            assert "damaged.pt" in str(err)
            continue
        assert loaded["iteration"] == 7 and loaded["note"] == "run 1", offset
        assert _same_state(loaded["model"], saved["model"]), offset


@pytest.mark.parametrize("size", [0, 10, 1000])
def test_empty_and_truncated_checkpoints_name_the_file(tmp_path, size):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, optimizer, 1, path)
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(CorruptCheckpointError, match="ckpt.pt"):
        load_checkpoint(path, model, optimizer)


def test_a_reference_checkpoint_without_checksum_loads_with_a_warning(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "reference.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": 3}, path)
    fresh, fresh_optimizer = _model_and_optimizer(seed=1)
    with pytest.warns(UserWarning, match="no checksum"):
        assert load_checkpoint(path, fresh, fresh_optimizer) == 3
    assert _same_state(fresh.state_dict(), model.state_dict())


def _killed_mid_save(path: str) -> None:
    """Save a checkpoint, and die by SIGKILL after half the bytes are written."""

    def dying_save(payload, f):
        f.write(b"\x00" * 4096)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.torch.save = dying_save  # only in this forked child
    model, optimizer = _model_and_optimizer()
    save_checkpoint(model, optimizer, 2, path)


def _slow_writer(path: str, ready, release) -> None:
    with atomic_output(path) as f:
        f.write(b"the other writer")
        ready.set()
        release.wait(60)


def _temporaries(path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(temporary_prefix(path)))


def test_a_writer_killed_mid_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, optimizer, 1, path)
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=_killed_mid_save, args=(str(path),))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert len(_temporaries(path)) == 1
    assert load_checkpoint(path, model, optimizer) == 1  # the previous checkpoint is intact
    save_checkpoint(model, optimizer, 3, path)
    assert _temporaries(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_save_never_removes_a_live_writers_temporary(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ckpt.pt"
    fork = multiprocessing.get_context("fork")
    ready, release = fork.Event(), fork.Event()
    writer = fork.Process(target=_slow_writer, args=(str(path), ready, release))
    writer.start()
    try:
        assert ready.wait(60)
        save_checkpoint(model, optimizer, 4, path)
        assert len(_temporaries(path)) == 1
    finally:
        release.set()
        writer.join(60)
    assert writer.exitcode == 0 and path.read_bytes() == b"the other writer"
    assert _temporaries(path) == []


def test_only_this_targets_dead_temporaries_are_removed(tmp_path):
    target = tmp_path / "a.bin"
    dead = tmp_path / f"{temporary_prefix(target)}dead1234"
    other_target = tmp_path / f"{temporary_prefix(tmp_path / 'a.bin.tmp-x.bin')}dead5678"
    unrelated = tmp_path / ".a.bin.backup"
    for path in (dead, other_target, unrelated):
        path.write_bytes(b"left over")
    with atomic_output(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.bin", other_target.name, unrelated.name])


# 3. token files with out-of-range ids after the first 2^20 tokens


def test_an_out_of_range_id_late_in_a_token_file_is_reported_with_file_and_position(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 500, size=3_000_000).astype("<u2")
    tokens[2_500_001] = 500
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    memmap = load_tokens(path)
    with pytest.raises(ValueError, match=r"train\.bin: token 2,500,001 is id 500, outside the vocabulary \[0, 500\)"):
        check_token_ids(memmap, 500, path, chunk_tokens=1 << 20)
    check_token_ids(memmap, 501, path)


# 5. tokenizer and BPE training on hostile input


def test_an_empty_special_token_is_rejected(tmp_path, gpt2_files):
    vocab, merges = load_vocab_merges(*gpt2_files)
    with pytest.raises(ValueError, match="empty string cannot be a special token"):
        Tokenizer(vocab, merges, special_tokens=[EOT, ""])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("low lower lowest", encoding="utf-8")
    with pytest.raises(ValueError, match="empty string cannot be a special token"):
        train_bpe(corpus, 260, [""])
    with pytest.raises(TypeError, match="must be strings"):
        Tokenizer(vocab, merges, special_tokens=[b"<|endoftext|>"])


def test_non_utf8_input_names_the_file_and_offset(tmp_path, gpt2_files):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf" + "é au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not valid UTF-8: byte offset 3"):
        train_bpe(bad, 260, [EOT])
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT])
    with pytest.raises(ValueError, match=r"latin1\.txt is not valid UTF-8: byte offset 3"):
        tokenize_to_memmap(bad, tokenizer, tmp_path / "out.bin", num_workers=1)
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(ValueError, match=r"latin1\.txt is not valid UTF-8"):
        load_vocab_merges(gpt2_files[0], bad)


@pytest.mark.parametrize("bad_id", [1.0, True, np.float32(5), "5", None])
def test_decode_rejects_ids_that_are_not_integers(gpt2_files, bad_id):
    tokenizer = Tokenizer.from_files(*gpt2_files)
    with pytest.raises(TypeError, match="token ids must be integers"):
        tokenizer.decode([15496, bad_id])
    assert tokenizer.decode([np.int64(15496), np.uint16(11)]) == "Hello,"


def test_a_special_tokens_text_can_be_encoded_as_plain_text(gpt2_files, gpt2_encoding):
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT])
    text = f"a user wrote {EOT} here"
    plain = gpt2_encoding.encode_ordinary(text)
    assert 50256 not in plain
    assert tokenizer.encode_ordinary(text) == plain
    assert tokenizer.encode(text, allowed_special=set()) == plain
    with pytest.raises(ValueError, match="disallowed"):
        tokenizer.encode(text, allowed_special=set(), disallowed_special="all")
    assert tokenizer.encode(text) == gpt2_encoding.encode(text, allowed_special={EOT})
