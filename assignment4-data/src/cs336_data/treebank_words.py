"""NLTK's Treebank-style word tokens (``NLTKWordTokenizer``, what ``word_tokenize`` uses after sentence splitting),
token for token, and fast.

Running NLTK's ~35 regex substitutions over every document was most of the Gopher filter's cost, so
:class:`ChunkTokenizer` tokenises each distinct whitespace-separated chunk once and reuses the result: NLTK's rules
only look past a chunk's edges in the few ways listed there, and those are part of the cache key or handled by
running NLTK itself on the end of the text. Importing NLTK takes seconds, which is why this lives apart from the
rules in :mod:`cs336_data.gopher` (imported by every pipeline command, even for ``--help``).
"""

from __future__ import annotations

import re
from itertools import filterfalse

from nltk.tokenize import NLTKWordTokenizer


def _stdlib(pattern) -> re.Pattern[str]:
    """NLTK's pattern recompiled with ``re`` (NLTK routes its own through the slower ``regex`` with timeouts)."""
    return re.compile(pattern.pattern, pattern.flags & (re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE))


# The eight CONTRACTIONS2 substitutions that NLTK applies one after the other, as one pass. Their words ("cannot",
# "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna") are \b-bounded and no two overlap, no split part of
# one starts or ends another, and a match starts and ends with a letter, so the spaces one substitution inserts
# never make or break a match of another: one left-to-right pass gives the same text (a test pins NLTK's list).
_CONTRACTIONS2 = re.compile(
    "|".join(f"(?:{p.pattern.removeprefix('(?i)')})" for p in NLTKWordTokenizer.CONTRACTIONS2), re.IGNORECASE
)


def _split_contraction(match: re.Match[str]) -> str:
    return " {} {} ".format(*(part for part in match.groups() if part is not None))


class TreebankWordTokenizer:
    """``NLTKWordTokenizer().tokenize``, token for token, in fewer and faster passes: NLTK's own patterns in NLTK's
    order, compiled with the standard library (NLTK routes them through the slower ``regex`` with timeouts), with
    its contraction substitutions merged (``tests/test_gopher.py`` compares it with NLTK)."""

    _NLTK = NLTKWordTokenizer
    _BEFORE_PADDING = [
        (_stdlib(p), s)
        for p, s in [*_NLTK.STARTING_QUOTES, *_NLTK.PUNCTUATION, _NLTK.PARENS_BRACKETS, _NLTK.DOUBLE_DASHES]
    ]
    _AFTER_PADDING = [(_stdlib(p), s) for p, s in _NLTK.ENDING_QUOTES]
    _CONTRACTIONS3 = [_stdlib(p) for p in _NLTK.CONTRACTIONS3]

    def tokenize(self, text: str) -> list[str]:
        for pattern, replacement in self._BEFORE_PADDING:
            text = pattern.sub(replacement, text)
        text = f" {text} "
        for pattern, replacement in self._AFTER_PADDING:
            text = pattern.sub(replacement, text)
        text = _CONTRACTIONS2.sub(_split_contraction, text)
        for pattern in self._CONTRACTIONS3:
            text = pattern.sub(r" \1 \2 ", text)
        return text.split()


# What NLTK's end-anchored final-period rule (the first PUNCTUATION pattern) may step over after the period: a chunk
# made only of these can still change because of a period in an earlier chunk.
_FINAL_PERIOD_CLASS = "])}>\"'»”’"
# A chunk whose tokens depend on the whitespace next to it gets marker characters, so that its cache key says which
# context it stood in: one that starts with " or '' is preceded by the text's start, a plain space or other
# whitespace; one that ends with ' is followed by a plain space or other whitespace. NLTK treats all whitespace but
# the plain space alike; a newline stands for it.
_AT_START, _SPACE_BEFORE, _OTHER_BEFORE, _SPACE_AFTER, _OTHER_AFTER = _MARKERS = "\x01\x02\x03\x04\x05"
_CONTEXT_BEFORE = {_AT_START: "", _SPACE_BEFORE: " ", _OTHER_BEFORE: "\n"}
_CONTEXT_AFTER = {_SPACE_AFTER: " ", _OTHER_AFTER: "\n"}
_ANY_MARKER = re.compile(f"[{_MARKERS}]")
_CONTEXT_QUOTES = re.compile(r"\"|''|'(?=\s)")
# NLTK's contraction rules, the only ones that split a chunk of ASCII letters and digits
_ANY_CONTRACTION = re.compile(
    "|".join(p.pattern.removeprefix("(?i)") for p in NLTKWordTokenizer.CONTRACTIONS2 + NLTKWordTokenizer.CONTRACTIONS3),
    re.IGNORECASE,
)
_SEPARATOR = "\x00"  # a chunk that no NLTK rule touches: a token of its own wherever it stands
# statistics of a chunk packed into one int, so that a document's are one C-level sum: words + length * 2**40 +
# words with a letter * 2**80 (a document would need a trillion characters to overflow a field)
_LENGTH, _LETTERS = 1 << 40, 1 << 80


def _mark_context(match: re.Match[str]) -> str:
    quote, text, start, end = match.group(), match.string, match.start(), match.end()
    if quote != "'" and (start == 0 or text[start - 1].isspace()):
        quote = (_AT_START if start == 0 else _SPACE_BEFORE if text[start - 1] == " " else _OTHER_BEFORE) + quote
    if quote[-1] == "'" and end < len(text) and text[end].isspace():
        quote += _SPACE_AFTER if text[end] == " " else _OTHER_AFTER
    return quote


def _pack(tokens: list[str]) -> int:
    packed = len(tokens)
    for token in tokens:
        packed += len(token) * _LENGTH
        if token.isalpha() or any(map(str.isalpha, token)):
            packed += _LETTERS
    return packed


def _in_context(key: str) -> str:
    """The text NLTK sees for a cached chunk: the chunk in its marked context, plain spaces where it has none."""
    before, after = _CONTEXT_BEFORE.get(key[0]), _CONTEXT_AFTER.get(key[-1])
    chunk = key[before is not None : len(key) - (after is not None)]
    return (" " if before is None else before) + chunk + (" " if after is None else after)


class ChunkTokenizer:
    r"""NLTK's word tokens, computed once per distinct chunk (a maximal run of non-whitespace).

    Why this is exact: NLTK's substitutions only insert spaces, collapse whitespace and turn quote characters into
    other non-whitespace quote tokens, then it splits on whitespace, so every token comes from one chunk. Its
    patterns read past a chunk's edges in these places only, and each is covered:

    - ``^"`` and ``([ ([{<])("|'')``: a chunk starting with ``"`` or ``''`` depends on what precedes it (the text's
      start, a plain space, or other whitespace), which is marked in its key;
    - ``([^'])' ``: a chunk ending in ``'`` is read with the character after it (a plain space or not), which is
      marked in its key;
    - the end-anchored rules (``...\.[...]*\s*$`` and ``[:,]$``) can only reach back over trailing chunks made of
      closing brackets and quotes, so the text from its last chunk holding anything else is tokenised whole;
    - the rest look at most one character past the edge, where any whitespace acts alike (``\b``, ``\w``, ``[^\d]``,
      ``(?=\s)``, spaces inserted next to whitespace), or run once all whitespace became single spaces.

    Misses are tokenised together, one NLTK call per document, as chunks in their context separated by a ``\x00``
    chunk. The cache holds at most ``max_entries`` chunks (~200 bytes each) and is emptied when full; results never
    depend on it.
    ``tests/test_gopher.py`` checks the tokens against NLTK on real, adversarial and random text.
    """

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._nltk = TreebankWordTokenizer()
        self._tokens: dict[str, str] = {}  # a chunk's tokens joined by spaces
        self._statistics: dict[str, int] = {}

    def _split(self, text: str) -> tuple[int, list[str], str]:
        """Number of chunks, cache keys of the chunks before the text's end, and that end (with the whitespace
        character before it) for NLTK."""
        if _ANY_MARKER.search(text):  # control characters that our keys use: NLTK takes the whole text
            return len(text.split()), [], text
        keys = (_CONTEXT_QUOTES.sub(_mark_context, text) if "'" in text or '"' in text else text).split()
        last = len(keys) - 1
        while last >= 0 and not keys[last].strip(_FINAL_PERIOD_CLASS + _MARKERS):
            last -= 1
        if last <= 0:
            return len(keys), [], text
        rest = text[len(text.rsplit(None, len(keys) - last)[0]) :]
        tail = rest.lstrip()
        return len(keys), keys[:last], rest[len(rest) - len(tail) - 1] + tail

    def _fill(self, keys: list[str]) -> None:
        """Tokenise the chunks not in the cache, all in one NLTK call."""
        unique = set(keys)
        missing = list(filterfalse(self._statistics.__contains__, unique))
        if not missing:
            return
        if len(self._statistics) + len(missing) > self.max_entries:
            self._tokens.clear()
            self._statistics.clear()
            missing = list(unique)
        batch = []
        for key in missing:
            if key.isascii() and key.isalnum() and not _ANY_CONTRACTION.search(f" {key} "):
                self._store(key, [key])  # letters and digits alone: no NLTK rule but the contractions applies
            elif _SEPARATOR in key:  # alone: the separator after it is still the last token
                self._store(key, self._nltk.tokenize(_in_context(key) + _SEPARATOR)[:-1])
            else:
                batch.append(key)
        if not batch:
            return
        batch.sort(key=lambda key: key[0] != _AT_START)  # a chunk from the text's start must start the batch too
        tokens = self._nltk.tokenize(_SEPARATOR.join(map(_in_context, batch)) + _SEPARATOR)
        groups = " ".join(tokens).split(_SEPARATOR)  # tokens hold no whitespace
        if len(groups) != len(batch) + 1 or groups[-1]:
            raise RuntimeError("NLTK split a separator chunk: its tokenizer's rules changed")
        for key, group in zip(batch, groups):
            self._store(key, group.split())

    def _store(self, key: str, tokens: list[str]) -> None:
        self._tokens[key] = " ".join(tokens)  # one object per chunk, not one per token
        self._statistics[key] = _pack(tokens)

    def tokenize(self, text: str) -> list[str]:
        _, keys, tail = self._split(text)
        self._fill(keys)
        return " ".join(map(self._tokens.__getitem__, keys)).split() + self._nltk.tokenize(tail)

    def statistics(self, text: str, max_chunks: int | None = None) -> tuple[int, int, int] | None:
        """Number of words, their total length in characters, and how many contain a letter; None when the text
        has more than ``max_chunks`` whitespace-separated chunks (NLTK makes at least one word of each)."""
        chunks, keys, tail = self._split(text)
        if max_chunks is not None and chunks > max_chunks:
            return None
        self._fill(keys)
        packed = sum(map(self._statistics.__getitem__, keys)) + _pack(self._nltk.tokenize(tail))
        return packed % _LENGTH, packed % _LETTERS // _LENGTH, packed // _LETTERS
