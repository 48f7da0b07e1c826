"""Tokenise a text file into the on-disk token format: a flat little-endian uint16 file (``.bin``, no header).

The file is cut into chunks where encoding the parts equals encoding the whole (at ``<|endoftext|>`` and other
special tokens, or at a safe whitespace cut: see :mod:`cs336_basics.pretokenization`), the chunks are encoded
in a process pool, and their ids are appended in file order to a temporary file that is renamed into place at
the end (:mod:`cs336_basics.toolkit.atomic`). Memory stays bounded (a few chunks in flight), and an interrupted run
never leaves a truncated ``.bin`` under the final name; the next run removes a killed run's temporary.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cs336_basics.pretokenization import find_chunk_boundaries, read_text_range
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import atomic_output

TOKEN_DTYPE = np.dtype("<u2")
_DEFAULT_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class _Chunk:
    path: str
    start: int
    end: int


# Set once per worker process by the pool initializer: sending the tokenizer with every chunk would pickle the
# whole vocabulary each time.
_worker_tokenizer: Tokenizer | None = None


def _init_worker(tokenizer: Tokenizer) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _encode_chunk(chunk: _Chunk) -> np.ndarray:
    assert _worker_tokenizer is not None, "worker used before _init_worker"
    return _encode_with(_worker_tokenizer, chunk)


def _encode_with(tokenizer: Tokenizer, chunk: _Chunk) -> np.ndarray:
    ids = tokenizer.encode(read_text_range(chunk.path, chunk.start, chunk.end))
    return np.asarray(ids, dtype=TOKEN_DTYPE)


def tokenize_to_memmap(
    input_path: str | os.PathLike,
    tokenizer: Tokenizer,
    output_path: str | os.PathLike,
    *,
    num_workers: int | None = None,
    chunk_bytes: int = _DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> int:
    """Encode the UTF-8 file ``input_path`` with ``tokenizer`` into ``output_path``; return the number of tokens.

    The result equals ``tokenizer.encode(whole file)`` written as uint16. ``num_workers`` defaults to the CPU
    count; read it back with ``np.memmap(output_path, dtype=np.uint16, mode="r")``.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"text file {input_path} does not exist")
    if tokenizer.vocab_size > np.iinfo(TOKEN_DTYPE).max + 1:
        raise ValueError(f"vocab_size={tokenizer.vocab_size} does not fit the uint16 token format (at most 65536 ids)")
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    boundaries = find_chunk_boundaries(input_path, chunk_bytes, list(tokenizer.special_token_ids))
    chunks = [_Chunk(os.fspath(input_path), s, e) for s, e in zip(boundaries, boundaries[1:])]
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(chunks)))

    desc = f"tokenize {input_path.name}"
    bar = tqdm(total=boundaries[-1], unit="B", unit_scale=True, desc=desc, disable=not progress)
    with atomic_output(output_path) as out, bar:
        if workers == 1:
            results = (_encode_with(tokenizer, chunk) for chunk in chunks)
            total = _write_in_order(results, chunks, out, bar)
        else:
            context = multiprocessing.get_context("fork")
            with context.Pool(workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
                total = _write_in_order(pool.imap(_encode_chunk, chunks), chunks, out, bar)
    return total


def _write_in_order(results, chunks: list[_Chunk], out, bar) -> int:
    total = 0
    for chunk, ids in zip(chunks, results):
        ids.tofile(out)
        total += len(ids)
        bar.update(chunk.end - chunk.start)
    return total
