"""Read and write a BPE vocabulary and merge list in GPT-2's file format.

* vocab: a JSON object ``{printable token string: id}`` (GPT-2's ``encoder.json``);
* merges: text, one ``left right`` pair per line in creation order, printable strings (GPT-2's
  ``vocab.bpe``); a leading ``#version`` line and blank lines are ignored when reading.

Both files are written atomically, so an interrupted run never leaves a truncated tokenizer behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cs336_basics.gpt2_bytes import decode_token, encode_token


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
    with open(vocab_path, encoding="utf-8") as f:
        raw_vocab = json.load(f)
    if not isinstance(raw_vocab, dict):
        raise ValueError(f"{os.fspath(vocab_path)!r} must hold a JSON object of token string -> id")
    vocab = {int(token_id): decode_token(token) for token, token_id in raw_vocab.items()}
    merges: list[tuple[bytes, bytes]] = []
    with open(merges_path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or (line_number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{os.fspath(merges_path)}:{line_number}: expected 'left right', got {line!r}")
            merges.append((decode_token(parts[0]), decode_token(parts[1])))
    return vocab, merges


def _write_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
