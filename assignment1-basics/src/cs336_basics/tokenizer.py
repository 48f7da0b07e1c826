"""Byte-level BPE tokenizer: encode/decode with a trained vocabulary and merge list (GPT-2 compatible).

Speed comes from two facts about natural text: the regex pre-tokenisation is the only per-character
work, and a few thousand distinct pre-tokens make up almost all of any text. So ``encode`` runs the regex
in C (``findall``), maps every pre-token through a dict cache whose misses run BPE (``__missing__``), and
flattens the cached id tuples with ``itertools.chain``: no Python bytecode runs per pre-token on a hit.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Literal

import regex

from cs336_basics.pretokenization import (
    checked_special_tokens,
    last_safe_cut,
    partial_special_suffix_start,
    pretokenize,
    special_token_regex,
)
from cs336_basics.vocab_files import load_vocab_merges


def _token_id(value: object) -> int:
    """``value`` as a token id: any integer type except ``bool``."""
    try:
        if not isinstance(value, bool):
            return operator.index(value)
    except TypeError:
        pass
    raise TypeError(f"token ids must be integers, got {value!r} ({type(value).__name__})")


class _PretokenCache(dict[str, tuple[int, ...]]):
    """Pre-token -> token ids; a miss runs BPE once (``dict.__getitem__`` calls ``__missing__`` in C)."""

    def __init__(self, tokenizer: Tokenizer):
        super().__init__()
        self._tokenizer = tokenizer

    def __missing__(self, pretoken: str) -> tuple[int, ...]:
        ids = self._tokenizer._bpe(pretoken.encode("utf-8"))
        self[pretoken] = ids
        return ids


class Tokenizer:
    """Encode text to token ids and back with a byte-level BPE vocabulary.

    ``special_tokens`` are matched before pre-tokenisation, longest first, and map to one id each: the
    existing id when the token's bytes are already in the vocabulary, otherwise a new id after the largest.
    """

    # Bounded memory on endless streams: the cache is emptied when it grows past this many pre-tokens.
    max_cache_entries = 1 << 19
    # encode_iterable works on pieces of about this many characters.
    stream_chunk_chars = 1 << 18

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | None = None,
    ):
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges = list(merges)
        id_of = {token: token_id for token_id, token in self.vocab.items()}
        missing = [b for b in range(256) if bytes([b]) not in id_of]
        if missing:
            raise ValueError(f"vocab lacks {len(missing)} single-byte tokens (e.g. {bytes([missing[0]])!r})")
        self._byte_ids = [id_of[bytes([b])] for b in range(256)]

        self.special_token_ids: dict[str, int] = {}
        for token in checked_special_tokens(special_tokens):
            encoded = token.encode("utf-8")
            if encoded not in id_of:
                id_of[encoded] = max(self.vocab, default=-1) + 1
                self.vocab[id_of[encoded]] = encoded
            self.special_token_ids[token] = id_of[encoded]
        self._special_tokens = list(self.special_token_ids)
        self._all_special = frozenset(self._special_tokens)
        self._special_regexes: dict[frozenset[str], regex.Pattern[str] | None] = {}

        # (left id, right id) -> (rank, merged id): BPE merges the lowest rank first.
        self._merge_of: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (left, right) in enumerate(self.merges):
            try:
                pair = (id_of[left], id_of[right])
                merged = id_of[left + right]
            except KeyError:
                raise ValueError(f"merge #{rank} {left!r} + {right!r} uses a token missing from the vocab") from None
            self._merge_of.setdefault(pair, (rank, merged))
        self._cache = _PretokenCache(self)

    @classmethod
    def from_files(
        cls,
        vocab_filepath: str | os.PathLike,
        merges_filepath: str | os.PathLike,
        special_tokens: list[str] | None = None,
    ) -> Tokenizer:
        """Load GPT-2-format vocab JSON and merges text (see :mod:`cs336_basics.vocab_files`)."""
        vocab, merges = load_vocab_merges(vocab_filepath, merges_filepath)
        return cls(vocab, merges, special_tokens)

    @property
    def vocab_size(self) -> int:
        """One more than the largest id (ids need not be contiguous in a hand-made vocab)."""
        return max(self.vocab) + 1

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = "all",
        disallowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    ) -> list[int]:
        """Token ids of ``text``; each allowed special token becomes its single id.

        The special-token options are tiktoken's, with the course's default: every special token given at
        construction is allowed. A special token that is neither allowed nor disallowed is encoded as plain
        text; text containing a disallowed one raises ``ValueError`` (``"all"``: every one not allowed).
        """
        allowed = self._special_subset(allowed_special, "allowed_special")
        disallowed = self._special_subset(disallowed_special, "disallowed_special") - allowed
        if disallowed and (found := self._special_regex(disallowed).search(text)):
            raise ValueError(
                f"text contains the special token {found.group()!r}, which is disallowed: pass it in allowed_special "
                "to encode it as its id, or leave it out of disallowed_special to encode it as plain text"
            )
        ids: list[int] = []
        if len(self._cache) > self.max_cache_entries:
            self._cache.clear()
        special_regex = self._special_regex(allowed)
        if special_regex is None:
            self._encode_ordinary_into(text, ids)
            return ids
        start = 0
        for match in special_regex.finditer(text):
            if match.start() > start:
                self._encode_ordinary_into(text[start : match.start()], ids)
            ids.append(self.special_token_ids[match.group()])
            start = match.end()
        if start < len(text):
            self._encode_ordinary_into(text[start:], ids)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text`` with every special token's string encoded as plain text (tiktoken's name)."""
        return self.encode(text, allowed_special=frozenset())

    def _special_subset(self, names: Literal["all"] | AbstractSet[str], argument: str) -> frozenset[str]:
        if names == "all":
            return self._all_special
        if isinstance(names, str):
            raise TypeError(f'{argument} must be "all" or a set of special tokens, got the string {names!r}')
        unknown = set(names) - self.special_token_ids.keys()
        if unknown:
            raise ValueError(f"{argument} names {sorted(unknown)}, which are not special tokens of this tokenizer")
        return frozenset(names)

    def _special_regex(self, tokens: frozenset[str]) -> regex.Pattern[str] | None:
        """The alternation of ``tokens``, longest first (compiled once per subset)."""
        if tokens not in self._special_regexes:
            self._special_regexes[tokens] = special_token_regex(sorted(tokens))
        return self._special_regexes[tokens]

    def _encode_ordinary_into(self, text: str, ids: list[int]) -> None:
        ids.extend(chain.from_iterable(map(self._cache.__getitem__, pretokenize(text))))

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Stream the ids of the concatenated strings (e.g. the lines of a file) in bounded memory.

        Text is buffered and encoded up to the last safe cut (see :mod:`cs336_basics.pretokenization`), so the
        output always equals ``encode("".join(iterable))``. A buffer without a safe cut (one long run of
        whitespace has none) is searched again only once it has doubled, so the time stays linear.
        """
        pending: list[str] = []
        pending_chars = 0
        next_search = self.stream_chunk_chars
        for chunk in iterable:
            pending.append(chunk)
            pending_chars += len(chunk)
            if pending_chars < next_search:
                continue
            buffer = "".join(pending)
            cut = self._last_stream_cut(buffer)
            if cut:
                yield from self.encode(buffer[:cut])
                buffer = buffer[cut:]
            pending, pending_chars = [buffer], len(buffer)
            next_search = max(self.stream_chunk_chars, 2 * pending_chars)
        yield from self.encode("".join(pending))

    def _last_stream_cut(self, buffer: str) -> int:
        """Largest index where ``encode(buffer[:i]) + encode(buffer[i:] + more) == encode(buffer + more)``.

        Never inside a special token, nor inside a suffix that could grow into one; 0 when there is none.
        """
        special_regex = self._special_regex(self._all_special)
        if special_regex is None:
            return last_safe_cut(buffer) or 0
        limit = partial_special_suffix_start(buffer, self._special_tokens)
        region_start = 0
        for match in special_regex.finditer(buffer):
            if match.end() <= limit:
                region_start = match.end()
            else:
                limit = min(limit, match.start())
                break
        cut = last_safe_cut(buffer, region_start, limit)
        return cut if cut is not None else region_start

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; invalid UTF-8 (e.g. a cut multi-byte character) becomes U+FFFD.

        Ids must be integers (Python or NumPy); ``True`` or ``1.0`` would otherwise hash like the id 1.
        """
        ids = ids if isinstance(ids, list) else list(ids)
        if not set(map(type, ids)) <= {int}:  # one pass in C; only a mixed list is checked id by id
            ids = [_token_id(i) for i in ids]
        try:
            data = b"".join(map(self.vocab.__getitem__, ids))
        except KeyError as err:
            raise ValueError(f"token id {err.args[0]!r} is not in the vocabulary") from None
        return data.decode("utf-8", errors="replace")

    def _bpe(self, token: bytes) -> tuple[int, ...]:
        """Apply merges to one pre-token: repeatedly merge the adjacent pair of lowest rank."""
        ids = [self._byte_ids[b] for b in token]
        merge_of = self._merge_of
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                found = merge_of.get(pair)
                if found is not None and (best is None or found[0] < best[0]):
                    best, best_pair = found, pair
            if best is None:
                break
            left, right = best_pair
            merged = best[1]
            out: list[int] = []
            i, n = 0, len(ids)
            while i < n:
                if i + 1 < n and ids[i] == left and ids[i + 1] == right:
                    out.append(merged)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return tuple(ids)
