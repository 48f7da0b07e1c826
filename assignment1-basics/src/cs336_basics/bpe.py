"""Byte-level BPE training (GPT-2 style), fast enough for multi-GB corpora on a laptop.

Pipeline:

1. Pre-tokenise: the file is cut into chunks at special tokens (bounded memory: one chunk per worker in
   flight), each worker splits its chunk on the special tokens, runs the GPT-2 regex and counts pre-tokens.
2. Merge: every distinct pre-token becomes a list of token ids weighted by its count. Pair counts are
   updated *incrementally*: an index maps each pair to the words that contain it, so a merge only touches
   the words where it occurs. The best pair comes from a max-heap with lazy invalidation (stale entries are
   re-pushed with their current count when popped). Ties go to the lexicographically greater pair of byte
   strings, exactly as the reference implementation.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from cs336_basics.pretokenization import (
    checked_special_tokens,
    count_pretokens,
    find_chunk_boundaries,
    read_text_range,
    special_token_regex,
)
from cs336_basics.vocab_files import load_vocab_merges, save_vocab_merges

__all__ = ["train_bpe", "train_bpe_from_counts", "pretoken_counts", "save_vocab_merges", "load_vocab_merges"]

Vocab = dict[int, bytes]
Merges = list[tuple[bytes, bytes]]

# Below this size a worker pool costs more than it saves.
_PARALLEL_MIN_BYTES = 4 << 20
_MAX_CHUNK_BYTES = 32 << 20


def train_bpe(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: list[str],
    *,
    num_workers: int | None = None,
    progress: bool = False,
) -> tuple[Vocab, Merges]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file.

    Returns ``vocab`` (ids ``0 .. vocab_size-1``: special tokens first, then the 256 bytes, then one entry
    per merge) and ``merges`` in creation order. ``num_workers`` defaults to the CPU count.
    """
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"BPE training input {os.fspath(input_path)!r} does not exist")
    special_tokens = checked_special_tokens(special_tokens)
    min_size = 256 + len(special_tokens)
    if vocab_size < min_size:
        raise ValueError(f"vocab_size={vocab_size} is smaller than 256 bytes + {len(special_tokens)} special tokens")
    counts = pretoken_counts(input_path, special_tokens, num_workers=num_workers, progress=progress)
    return train_bpe_from_counts(counts, vocab_size, special_tokens, progress=progress)


@dataclass(frozen=True)
class _ChunkJob:
    path: str
    start: int
    end: int
    special_tokens: tuple[str, ...]


def _count_chunk(job: _ChunkJob) -> Counter[str]:
    text = read_text_range(job.path, job.start, job.end)
    return count_pretokens(text, special_token_regex(job.special_tokens))


def pretoken_counts(
    input_path: str | os.PathLike,
    special_tokens: Sequence[str],
    *,
    num_workers: int | None = None,
    progress: bool = False,
) -> Counter[str]:
    """Count GPT-2 pre-tokens of a file, in parallel over chunks cut at special tokens."""
    special_tokens = checked_special_tokens(special_tokens)
    size = os.path.getsize(input_path)
    workers = max(1, num_workers if num_workers is not None else (os.cpu_count() or 1))
    if size < _PARALLEL_MIN_BYTES:
        workers = 1
    chunk_bytes = max(1 << 20, min(_MAX_CHUNK_BYTES, math.ceil(size / (4 * workers))))
    boundaries = find_chunk_boundaries(input_path, chunk_bytes, special_tokens)
    jobs = [_ChunkJob(os.fspath(input_path), s, e, tuple(special_tokens)) for s, e in zip(boundaries, boundaries[1:])]
    bar = tqdm(total=size, unit="B", unit_scale=True, desc="pre-tokenize", disable=not progress)
    total: Counter[str] = Counter()
    with bar:
        if workers == 1 or len(jobs) == 1:
            results: Iterable[Counter[str]] = map(_count_chunk, jobs)
            for job, counts in zip(jobs, results):
                total.update(counts)
                bar.update(job.end - job.start)
        else:
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                for job, counts in zip(jobs, pool.imap(_count_chunk, jobs)):
                    total.update(counts)
                    bar.update(job.end - job.start)
    return total


def train_bpe_from_counts(
    pretoken_counts: dict[str, int], vocab_size: int, special_tokens: Sequence[str], *, progress: bool = False
) -> tuple[Vocab, Merges]:
    """Run the BPE merges on counted pre-tokens (see the module docstring for the algorithm)."""
    special_tokens = checked_special_tokens(special_tokens)
    num_merges = vocab_size - 256 - len(special_tokens)
    if num_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is smaller than 256 bytes + {len(special_tokens)} special tokens")
    token_bytes = [bytes([b]) for b in range(256)]
    merge_ids = _merge(pretoken_counts, num_merges, token_bytes, progress)
    merges = [(token_bytes[a], token_bytes[b]) for a, b in merge_ids]
    vocab: Vocab = {}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    for b in token_bytes[:256]:
        vocab[len(vocab)] = b
    for left, right in merges:
        vocab[len(vocab)] = left + right
    return vocab, merges


def _order_key(token: bytes) -> tuple[int, ...]:
    """A key whose ascending order is the *descending* byte-string order (prefixes sort after extensions).

    Lets a min-heap pop the lexicographically greatest pair among equal counts.
    """
    return (*(255 - b for b in token), 256)


def _merge(counts: dict[str, int], num_merges: int, token_bytes: list[bytes], progress: bool) -> list[tuple[int, int]]:
    """Perform up to ``num_merges`` merges; appends new tokens to ``token_bytes``; returns merged id pairs."""
    words: list[list[int]] = []
    freqs: list[int] = []
    for pretoken, freq in counts.items():
        encoded = pretoken.encode("utf-8")
        if len(encoded) > 1:  # single bytes never take part in a pair
            words.append(list(encoded))
            freqs.append(freq)

    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    pair_words: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
    for index, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            pair_words[pair].append(index)

    order = [_order_key(b) for b in token_bytes]
    heap = [(-count, order[a], order[b], a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    bar = tqdm(total=num_merges, desc="merge", disable=not progress)
    while len(merges) < num_merges and heap:
        neg_count, _, _, a, b = heapq.heappop(heap)
        current = pair_counts.get((a, b), 0)
        if current != -neg_count:
            if current > 0:  # stale: the count only went down since this entry was pushed
                heapq.heappush(heap, (-current, order[a], order[b], a, b))
            continue
        new_id = len(token_bytes)
        token_bytes.append(token_bytes[a] + token_bytes[b])
        order.append(_order_key(token_bytes[new_id]))
        merges.append((a, b))
        bar.update(1)
        grown = _apply_merge(a, b, new_id, words, freqs, pair_counts, pair_words)
        for pair in grown:
            count = pair_counts[pair]
            if count > 0:
                heapq.heappush(heap, (-count, order[pair[0]], order[pair[1]], pair[0], pair[1]))
    bar.close()
    return merges


def _apply_merge(
    a: int,
    b: int,
    new_id: int,
    words: list[list[int]],
    freqs: list[int],
    pair_counts: defaultdict[tuple[int, int], int],
    pair_words: defaultdict[tuple[int, int], list[int]],
) -> set[tuple[int, int]]:
    """Replace ``(a, b)`` by ``new_id`` in every word that has it, updating counts only around each site.

    At a site ``x a b y`` the pairs ``(x, a)`` and ``(b, y)`` lose the word's count and ``(x, new)``,
    ``(new, y)`` gain it; ``x`` is read from the rewritten word, so runs like ``a b a b`` stay exact.
    Returns the pairs whose counts grew (they need fresh heap entries).
    """
    grown: set[tuple[int, int]] = set()
    for index in pair_words.pop((a, b), ()):
        word = words[index]
        n = len(word)
        if n < 2 or a not in word:
            continue
        freq = freqs[index]
        out: list[int] = []
        i = 0
        changed = False
        while i < n:
            token = word[i]
            if token == a and i + 1 < n and word[i + 1] == b:
                changed = True
                if out:
                    prev = out[-1]
                    pair_counts[(prev, a)] -= freq
                    pair_counts[(prev, new_id)] += freq
                    grown.add((prev, new_id))
                    pair_words[(prev, new_id)].append(index)
                if i + 2 < n:
                    nxt = word[i + 2]
                    pair_counts[(b, nxt)] -= freq
                    pair_counts[(new_id, nxt)] += freq
                    grown.add((new_id, nxt))
                    pair_words[(new_id, nxt)].append(index)
                out.append(new_id)
                i += 2
            else:
                out.append(token)
                i += 1
        if changed:
            words[index] = out
    pair_counts.pop((a, b), None)
    return grown
