"""MinHash + LSH fuzzy document deduplication.

Each document's normalised word n-grams are hashed once with 64-bit MurmurHash3; ``num_hashes`` seeded hash
functions are then derived in one vectorised NumPy step, ``h_i(x) = mix64(x XOR seed_i)`` (the splitmix64 finaliser,
a bijection with full avalanche, so each seed gives an independent-looking permutation of 64-bit values). The
signature is the column-wise minimum. LSH cuts it into ``num_bands`` bands of ``num_hashes // num_bands`` rows and
hashes each band to one 64-bit bucket key; documents sharing a key in any band are candidates, verified by the true
Jaccard similarity of their n-gram sets; verified pairs are clustered transitively (union-find) and the first
document of each cluster survives.

Scaling past memory: signatures are computed shard by shard (in parallel) and only their band keys are written to
disk (``bands/<shard>.npy``, ``docs x bands`` uint64). Clustering reads one band column at a time across all shards,
so memory holds 8 bytes per document plus the n-grams of candidate documents being verified.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import mmh3
import numpy as np
from cs336_basics.toolkit.atomic import atomic_output, write_bytes_atomic
from jaxtyping import Bool, Int64, UInt64

from cs336_data.dedup.normalize import jaccard, word_ngrams
from cs336_data.dedup.union_find import UnionFind

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MAX = np.uint64(np.iinfo(np.uint64).max)
_ROWS_PER_BLOCK = 2048  # bounds the (shingles x hashes) matrix of a long document to ~2048 * k * 8 bytes


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a uint64 array (NumPy wraps uint64 multiplication modulo 2**64)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash signatures, LSH banding and the Jaccard threshold that verified duplicates reach."""

    num_hashes: int = field(default=128, metadata={"help": "hash functions per signature"})
    # 32 bands of 4 rows: a pair at Jaccard 0.8 shares a band with probability 1 - (1 - 0.8**4)**32 > 0.9999999.
    # The extra candidates this lets through cost only a verification, and verification keeps precision at 1.
    num_bands: int = field(default=32, metadata={"help": "LSH bands (num_hashes must be a multiple)"})
    ngrams: int = field(default=5, metadata={"help": "words per n-gram"})
    jaccard_threshold: float = field(default=0.8, metadata={"help": "n-gram Jaccard from which two are duplicates"})
    seed: int = field(default=0, metadata={"help": "seed of the derived hash functions"})

    def __post_init__(self):
        if self.num_hashes < 1 or self.num_bands < 1 or self.ngrams < 1:
            raise ValueError("num_hashes, num_bands and ngrams must be positive")
        if not 0.0 < self.jaccard_threshold <= 1.0:
            raise ValueError(f"jaccard_threshold must lie in (0, 1], got {self.jaccard_threshold}")
        if self.num_hashes % self.num_bands:
            raise ValueError(f"num_hashes={self.num_hashes} is not divisible by num_bands={self.num_bands}")

    @property
    def rows_per_band(self) -> int:
        return self.num_hashes // self.num_bands


class MinHasher:
    """Signatures and LSH band keys for one configuration (the seeds make runs reproducible across processes)."""

    def __init__(self, config: MinHashConfig):
        self.config = config
        rng = np.random.default_rng(config.seed)
        self.seeds = rng.integers(0, np.iinfo(np.int64).max, size=config.num_hashes, dtype=np.int64).astype(np.uint64)

    def shingle_hashes(self, text: str) -> UInt64[np.ndarray, " shingles"]:
        grams = word_ngrams(text, self.config.ngrams)
        return np.fromiter((mmh3.hash64(g, signed=False)[0] for g in grams), np.uint64, count=len(grams))

    def signature(self, text: str) -> UInt64[np.ndarray, " num_hashes"]:
        shingles = self.shingle_hashes(text)
        signature = np.full(self.config.num_hashes, _MAX, dtype=np.uint64)
        for start in range(0, len(shingles), _ROWS_PER_BLOCK):
            block = mix64(shingles[start : start + _ROWS_PER_BLOCK, None] ^ self.seeds[None, :])
            np.minimum(signature, block.min(axis=0), out=signature)
        return signature

    def band_keys(self, signatures: UInt64[np.ndarray, "docs num_hashes"]) -> UInt64[np.ndarray, "docs bands"]:
        """One 64-bit key per band: the band's rows folded through ``mix64`` (equal bands give equal keys)."""
        bands = signatures.reshape(len(signatures), self.config.num_bands, self.config.rows_per_band)
        keys = np.zeros(bands.shape[:2], dtype=np.uint64)
        for row in range(self.config.rows_per_band):
            keys = mix64(keys ^ bands[:, :, row])
        return keys

    def documents_band_keys(self, texts: Iterable[str]) -> UInt64[np.ndarray, "docs bands"]:
        signatures = [self.signature(t) for t in texts]
        if not signatures:
            return np.empty((0, self.config.num_bands), dtype=np.uint64)
        return self.band_keys(np.stack(signatures))


def same_bucket_groups(keys: UInt64[np.ndarray, " docs"]) -> Iterator[Int64[np.ndarray, " group"]]:
    """Indices of documents sharing a key, for every key held by two or more documents (ascending indices)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundaries = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(keys)]])
    for start, end in zip(starts, ends):
        if end - start > 1:
            yield order[start:end]


def cluster_near_duplicates(
    band_columns: Iterable[UInt64[np.ndarray, " docs"]],
    num_docs: int,
    ngram_set: Callable[[int], set[str]],
    jaccard_threshold: float,
) -> UnionFind:
    """Union every candidate pair whose true n-gram Jaccard is at or above the threshold.

    Pairs already in one cluster are not re-verified: whatever their similarity, they end up in the same cluster.
    """
    clusters = UnionFind(num_docs)
    checked: set[tuple[int, int]] = set()
    for keys in band_columns:
        for group in same_bucket_groups(np.asarray(keys)):
            members = [int(i) for i in group]
            for pos, a in enumerate(members):
                for b in members[pos + 1 :]:
                    if (a, b) in checked or clusters.find(a) == clusters.find(b):
                        continue
                    checked.add((a, b))
                    if jaccard(ngram_set(a), ngram_set(b)) >= jaccard_threshold:
                        clusters.union(a, b)
    return clusters


class MinHashDeduplicator:
    """Disk-backed MinHash dedup over shards of documents; ``work_dir/bands/<shard>.npy`` holds band keys."""

    def __init__(self, config: MinHashConfig, work_dir: str | os.PathLike):
        self.config = config
        self.hasher = MinHasher(config)
        self.work_dir = Path(work_dir)

    def _band_path(self, shard: int) -> Path:
        return self.work_dir / "bands" / f"{shard:06d}.npy"

    def add_shard(self, shard: int, texts: Iterable[str]) -> int:
        """Pass 1 for one shard (any process): write its documents' band keys. Returns the document count."""
        keys = self.hasher.documents_band_keys(texts)
        path = self._band_path(shard)
        with atomic_output(path) as f:
            np.save(f, keys)
        return len(keys)

    def survivors(
        self, num_shards: int, text_of: Callable[[int], str], ngram_cache_size: int = 100_000
    ) -> Bool[np.ndarray, " docs"]:
        """Pass 2: keep-mask over all documents, numbered shard by shard in shard order."""
        shards = [np.load(self._band_path(s), mmap_mode="r") for s in range(num_shards)]
        num_docs = sum(len(s) for s in shards)

        @lru_cache(maxsize=ngram_cache_size)
        def ngram_set(index: int) -> frozenset[str]:
            return frozenset(word_ngrams(text_of(index), self.config.ngrams))

        columns = (
            np.concatenate([np.asarray(s[:, band]) for s in shards]) if shards else np.empty(0, np.uint64)
            for band in range(self.config.num_bands)
        )
        clusters = cluster_near_duplicates(columns, num_docs, ngram_set, self.config.jaccard_threshold)
        return clusters.first_of_each_set()


def minhash_deduplicate_files(
    input_files: Sequence[str | os.PathLike],
    config: MinHashConfig,
    output_directory: str | os.PathLike,
    files_per_shard: int = 4096,
) -> list[Path]:
    """Each file is one document; survivors are copied unchanged to ``output_directory/<name>``. Returns them."""
    paths = [Path(p) for p in input_files]
    output_directory = Path(output_directory)
    output_directory.mkdir(parents=True, exist_ok=True)

    def text_of(index: int) -> str:
        return paths[index].read_text(encoding="utf-8", errors="replace")

    with tempfile.TemporaryDirectory() as tmp:
        dedup = MinHashDeduplicator(config, tmp)
        shards = [range(s, min(s + files_per_shard, len(paths))) for s in range(0, len(paths), files_per_shard)]
        for shard, indices in enumerate(shards):
            dedup.add_shard(shard, (text_of(i) for i in indices))
        keep = dedup.survivors(len(shards), text_of)
    kept = [p for p, k in zip(paths, keep) if k]
    for path in kept:
        write_bytes_atomic(output_directory / path.name, path.read_bytes())
    return kept
