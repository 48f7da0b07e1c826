"""A Witten-Bell bigram model of token ids: a cross-check of the filter-versus-raw result that needs no GPU.

Fitted on the same number of unique tokens of each corpus, it asks whether the held-out losses follow what a corpus
holds rather than how many times the transformer read it. Counting is vectorised (pair ids ``previous * V + next``
through ``np.unique``, histories through ``np.bincount``): a million tokens take a fraction of a second.

Interpolated Witten-Bell (Chen and Goodman 1998), down to the uniform distribution over the vocabulary::

    P(w | v) = (c(v w) + T(v) P(w)) / (c(v) + T(v))        P(w) = (c(w) + T / V) / (N + T)

``c(v w)`` counts the pair, ``c(v)`` the pairs with history ``v``, ``T(v)`` the distinct ids seen after ``v``,
``c(w)`` the id among all ``N`` training tokens, ``T`` the distinct ids among them, ``V`` the vocabulary size. A
history never seen gets ``P(w)``. Pairs are counted inside each training window only: windows are samples, so the
last token of one is not followed by the first of the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float64, Int64, Integer


@dataclass(frozen=True)
class WittenBellBigram:
    vocab_size: int
    pair_ids: Int64[np.ndarray, " pairs"]  # distinct ``previous * vocab_size + next`` seen, sorted
    pair_counts: Int64[np.ndarray, " pairs"]
    history_counts: Int64[np.ndarray, " vocab"]  # c(v)
    followers: Int64[np.ndarray, " vocab"]  # T(v)
    unigram: Float64[np.ndarray, " vocab"]  # P(w), every id above zero

    @classmethod
    def fit(cls, windows: Integer[np.ndarray, "windows length"], vocab_size: int) -> WittenBellBigram:
        """Counts of the windows' tokens and of the pairs inside each window."""
        windows = np.asarray(windows, dtype=np.int64)
        if windows.ndim != 2 or windows.shape[0] < 1 or windows.shape[1] < 2:
            raise ValueError(f"windows must be (count >= 1, length >= 2), got shape {windows.shape}")
        if windows.min() < 0 or windows.max() >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size}), got {windows.min()}..{windows.max()}")
        pair_ids, pair_counts = np.unique(windows[:, :-1] * vocab_size + windows[:, 1:], return_counts=True)
        histories = pair_ids // vocab_size
        token_counts = np.bincount(windows.ravel(), minlength=vocab_size)
        seen = np.count_nonzero(token_counts)
        return cls(
            vocab_size=vocab_size,
            pair_ids=pair_ids,
            pair_counts=pair_counts.astype(np.int64),
            history_counts=np.bincount(histories, weights=pair_counts, minlength=vocab_size).astype(np.int64),
            followers=np.bincount(histories, minlength=vocab_size).astype(np.int64),
            unigram=(token_counts + seen / vocab_size) / (windows.size + seen),
        )

    def probabilities(
        self, previous: Integer[np.ndarray, " n"], following: Integer[np.ndarray, " n"]
    ) -> Float64[np.ndarray, " n"]:
        """P(following | previous), element by element."""
        previous, following = np.asarray(previous, dtype=np.int64), np.asarray(following, dtype=np.int64)
        query = previous * self.vocab_size + following
        at = np.minimum(np.searchsorted(self.pair_ids, query), len(self.pair_ids) - 1)
        pair = np.where(self.pair_ids[at] == query, self.pair_counts[at], 0)
        history, types = self.history_counts[previous], self.followers[previous]
        backoff = self.unigram[following]
        with np.errstate(invalid="ignore", divide="ignore"):
            interpolated = (pair + types * backoff) / (history + types)
        return np.where(history > 0, interpolated, backoff)

    def cross_entropy(self, tokens: Integer[np.ndarray, " tokens"]) -> float:
        """Mean ``-ln P(token | the token before it)`` over every token but the first, in nats."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if len(tokens) < 2:
            raise ValueError(f"need at least 2 tokens to score a bigram, got {len(tokens)}")
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {tokens.min()}..{tokens.max()}")
        return float(-np.log(self.probabilities(tokens[:-1], tokens[1:])).mean())


def random_windows(
    tokens: Integer[np.ndarray, " tokens"], count: int, length: int, seed: int = 0
) -> Integer[np.ndarray, "count length"]:
    """``count`` of the corpus's non-overlapping ``length``-token windows, drawn at random without replacement
    (seeded): ``count * length`` unique tokens, spread over the whole corpus."""
    available = len(tokens) // length
    if not 0 < count <= available:
        raise ValueError(f"cannot draw {count} windows of {length} from {len(tokens)} tokens ({available} windows)")
    chosen = np.sort(np.random.default_rng(seed).choice(available, count, replace=False))
    return np.asarray(tokens[: available * length]).reshape(available, length)[chosen]
