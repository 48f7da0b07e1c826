"""Exact line deduplication: a line that occurs more than once anywhere in the corpus is removed everywhere.

Two passes that scale past memory. Pass 1 hashes every line (64-bit MurmurHash3 of the line without its line
ending, so the key has a fixed size whatever the line's length) and appends the hashes to on-disk buckets
(``hash % num_buckets``), one file per input shard so shards can be hashed in parallel. A reduce step counts each
bucket on its own (only one bucket is in memory at a time) and keeps the sorted hashes seen more than once.
Pass 2 rewrites each shard, dropping lines whose hash is in its bucket's duplicate list (memory-mapped, binary search).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import mmh3
import numpy as np
from cs336_basics.toolkit.atomic import atomic_output, write_bytes_atomic
from jaxtyping import Bool, UInt64


def line_key(line: bytes) -> bytes:
    """The line without its ending: the last line of a file counts the same with or without a final newline."""
    return line.rstrip(b"\r\n")


def hash_lines(lines: Sequence[bytes]) -> UInt64[np.ndarray, " lines"]:
    return np.fromiter((mmh3.hash64(line_key(line), signed=False)[0] for line in lines), np.uint64, count=len(lines))


class ExactLineDeduplicator:
    """Disk-backed line counter; ``work_dir`` holds ``hashes/<bucket>/<shard>.npy`` and ``dups/<bucket>.npy``."""

    def __init__(self, work_dir: str | os.PathLike, num_buckets: int = 16):
        self.work_dir = Path(work_dir)
        self.num_buckets = num_buckets
        self._dups: list[np.ndarray] | None = None

    def _bucket_dir(self, bucket: int) -> Path:
        return self.work_dir / "hashes" / f"{bucket:04d}"

    def _dup_path(self, bucket: int) -> Path:
        return self.work_dir / "dups" / f"{bucket:04d}.npy"

    def add_shard(self, shard: int, lines: Sequence[bytes]) -> None:
        """Pass 1 for one shard: write its line hashes into every bucket's directory."""
        hashes = hash_lines(lines)
        buckets = hashes % np.uint64(self.num_buckets)
        for bucket in range(self.num_buckets):
            directory = self._bucket_dir(bucket)
            directory.mkdir(parents=True, exist_ok=True)
            _save_atomic(directory / f"{shard:06d}.npy", hashes[buckets == bucket])

    def reduce(self) -> int:
        """Count each bucket's hashes; keep those seen more than once. Returns the number of duplicated lines."""
        total = 0
        for bucket in range(self.num_buckets):
            parts = [np.load(p) for p in sorted(self._bucket_dir(bucket).glob("*.npy"))]
            hashes = np.concatenate(parts) if parts else np.empty(0, np.uint64)
            unique, counts = np.unique(hashes, return_counts=True)
            dups = unique[counts > 1]
            total += len(dups)
            self._dup_path(bucket).parent.mkdir(parents=True, exist_ok=True)
            _save_atomic(self._dup_path(bucket), dups)
        return total

    def is_duplicated(self, hashes: UInt64[np.ndarray, " n"]) -> Bool[np.ndarray, " n"]:
        """Pass 2 lookup: which of these line hashes occur more than once in the corpus."""
        if self._dups is None:
            self._dups = [np.load(self._dup_path(b), mmap_mode="r") for b in range(self.num_buckets)]
        result = np.zeros(len(hashes), dtype=bool)
        buckets = hashes % np.uint64(self.num_buckets)
        for bucket in np.unique(buckets):
            dups = self._dups[int(bucket)]
            where = np.flatnonzero(buckets == bucket)
            if len(dups) == 0:
                continue
            pos = np.searchsorted(dups, hashes[where]).clip(max=len(dups) - 1)
            result[where] = dups[pos] == hashes[where]
        return result

    def unique_lines(self, lines: Sequence[bytes]) -> list[bytes]:
        keep = ~self.is_duplicated(hash_lines(lines))
        return [line for line, k in zip(lines, keep) if k]


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as f:
        np.save(f, array)


def _read_lines(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.readlines()


def exact_line_deduplicate_files(
    input_files: Iterable[str | os.PathLike],
    output_directory: str | os.PathLike,
    work_dir: str | os.PathLike | None = None,
    num_buckets: int = 16,
) -> None:
    """Rewrite every file to ``output_directory/<name>`` keeping only lines that occur exactly once in all files."""
    paths = [Path(p) for p in input_files]
    output_directory = Path(output_directory)
    output_directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        dedup = ExactLineDeduplicator(tmp, num_buckets)
        for shard, path in enumerate(paths):
            dedup.add_shard(shard, _read_lines(path))
        dedup.reduce()
        for path in paths:
            out = output_directory / path.name
            write_bytes_atomic(out, b"".join(dedup.unique_lines(_read_lines(path))))
