"""Read and write a BPE vocabulary and merge list in GPT-2's file format.

* vocab: a JSON object ``{printable token string: id}`` (GPT-2's ``encoder.json``);
* merges: text, one ``left right`` pair per line in creation order, printable strings (GPT-2's
  ``vocab.bpe``); a leading ``#version`` line and blank lines are ignored when reading.

Both files are written atomically, so an interrupted run never leaves a truncated tokenizer behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cs336_basics.gpt2_bytes import decode_token, encode_token
from cs336_basics.toolkit.atomic import atomic_output


def save_vocab_merges(
    vocab: dict[int, bytes],
    merges: list[tuple[bytes, bytes]],
    vocab_path: str | os.PathLike,
    merges_path: str | os.PathLike,
) -> None:
    """Write ``vocab`` as GPT-2 JSON and ``merges`` as GPT-2 merge lines."""
    encoded = {encode_token(token): token_id for token_id, token in sorted(vocab.items())}
    if len(encoded) != len(vocab):
        raise ValueError("vocab has duplicate byte strings; GPT-2's JSON format cannot represent them")
    _write_atomic(vocab_path, json.dumps(encoded, ensure_ascii=False, indent=0))
    lines = ["#version: 0.2", *(f"{encode_token(left)} {encode_token(right)}" for left, right in merges)]
    _write_atomic(merges_path, "\n".join(lines) + "\n")


def load_vocab_merges(
    vocab_path: str | os.PathLike, merges_path: str | os.PathLike
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read files written by :func:`save_vocab_merges` or GPT-2's own ``encoder.json`` / ``vocab.bpe``."""
    raw_vocab = _read_vocab_json(vocab_path)
    vocab = {int(token_id): decode_token(token) for token, token_id in raw_vocab.items()}
    merges: list[tuple[bytes, bytes]] = []
    for line_number, line in enumerate(_read_text(merges_path).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or (line_number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{os.fspath(merges_path)}:{line_number}: expected 'left right', got {line!r}")
        merges.append((decode_token(parts[0]), decode_token(parts[1])))
    return vocab, merges


def vocab_file_size(vocab_path: str | os.PathLike) -> int:
    """How many ids a tokenizer with this ``vocab.json`` emits (largest id + 1): the model's vocabulary size."""
    raw_vocab = _read_vocab_json(vocab_path)
    if not raw_vocab:
        raise ValueError(f"{os.fspath(vocab_path)} holds no tokens")
    return max(int(token_id) for token_id in raw_vocab.values()) + 1


def _read_vocab_json(vocab_path: str | os.PathLike) -> dict:
    try:
        raw_vocab = json.loads(_read_text(vocab_path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{os.fspath(vocab_path)} is not valid JSON: {err}") from None
    if not isinstance(raw_vocab, dict):
        raise ValueError(f"{os.fspath(vocab_path)!r} must hold a JSON object of token string -> id")
    return raw_vocab


def _write_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))


def _read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of a tokenizer file; a decoding error names the file."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{os.fspath(path)} is not valid UTF-8: byte offset {err.start}: {err.reason}") from None
