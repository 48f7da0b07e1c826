"""GPT-2 pre-tokenisation: the regex, splitting on special tokens, and safe places to cut text into chunks.

Both BPE training and encoding cut large inputs into chunks that are processed independently (in parallel,
or streamed). A cut is only allowed where the pre-tokenisation of the parts equals that of the whole:

* at the start of a special token (the text is split there anyway), or
* between a non-whitespace character and a whitespace character. No GPT-2 pre-token contains a non-space
  followed by a space (whitespace only ever *leads* a pre-token), and every decision the regex makes before
  the cut (end of a letter run, the ``(?!\\S)`` look-ahead, a failed contraction) sees the same answer at
  the end of the string as at the whitespace character. Cutting *before* a non-whitespace character is not
  safe: ``"a\\n\\n\\nb"`` is ``["a", "\\n\\n", "\\n", "b"]`` but ``"a\\n\\n\\n"`` ends in ``"\\n\\n\\n"``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_REGEX = regex.compile(GPT2_PATTERN)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# The last non-whitespace character that is followed by whitespace: the cut goes right after it.
_LAST_SAFE_CUT = regex.compile(r"\S(?=\s)", flags=regex.REVERSE)
# Byte-level version for cutting files: an ASCII non-whitespace byte followed by an ASCII whitespace byte
# (both single-byte UTF-8 characters, so the cut is also a character boundary).
_SAFE_CUT_BYTES = regex.compile(rb"[\x21-\x7e](?=[\t\n\x0b\x0c\r ])")


@cache
def _bmp_regex() -> re.Pattern[str]:
    """The GPT-2 pattern for the stdlib ``re`` engine, exact on text without characters above U+FFFF.

    ``re`` has no ``\\p{..}``, so the classes are spelled out as code-point ranges taken from ``regex``'s own
    Unicode tables (same answers by construction). Restricted to the BMP, each class compiles to a
    constant-time bitmap, and ``re`` runs this pattern about twice as fast as ``regex`` runs the original.
    The first four alternatives cannot match at the same position, so letters can be tried first.
    """
    bmp = "".join(map(chr, (*range(0xD800), *range(0xE000, 0x10000))))

    def ranges(prop: str) -> str:
        runs = (m.group() for m in regex.finditer(prop + "+", bmp))
        return "".join(re.escape(run[0]) + ("-" + re.escape(run[-1]) if len(run) > 1 else "") for run in runs)

    letter, number, space = ranges(r"\p{L}"), ranges(r"\p{N}"), ranges(r"\s")
    return re.compile(
        rf"[ ]?[{letter}]+|'(?:[sdmt]|ll|ve|re)|[ ]?[{number}]+|[ ]?[^{space}{letter}{number}]+"
        rf"|[{space}]+(?![^{space}])|[{space}]+"
    )


def pretokenize(text: str) -> list[str]:
    """GPT-2 pre-tokens of text that contains no special tokens (fast path for text within the BMP)."""
    if text.isascii() or _ASTRAL.search(text) is None:
        return _bmp_regex().findall(text)
    return GPT2_REGEX.findall(text)


def checked_special_tokens(special_tokens: Iterable[str] | None) -> list[str]:
    """The special tokens once each, in order; an empty one would match between every two characters."""
    tokens = list(dict.fromkeys(special_tokens or []))
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"special tokens must be strings, got {token!r} ({type(token).__name__})")
        if not token:
            raise ValueError("the empty string cannot be a special token (it would match between every two characters)")
    return tokens


def special_token_regex(special_tokens: Sequence[str]) -> regex.Pattern[str] | None:
    """An alternation of the escaped special tokens, longest first, so overlapping tokens match greedily."""
    if not special_tokens:
        return None
    ordered = sorted(set(special_tokens), key=len, reverse=True)
    return regex.compile("|".join(regex.escape(token) for token in ordered))


def split_on_special_tokens(text: str, special_regex: regex.Pattern[str] | None) -> list[str]:
    """Pieces of ``text`` between special tokens (tokens dropped); the empty pieces are dropped too."""
    if special_regex is None:
        return [text] if text else []
    return [piece for piece in special_regex.split(text) if piece]


def count_pretokens(text: str, special_regex: regex.Pattern[str] | None) -> Counter[str]:
    """How often each pre-token occurs, never counting across a special token."""
    counts: Counter[str] = Counter()
    for piece in split_on_special_tokens(text, special_regex):
        counts.update(pretokenize(piece))
    return counts


def last_safe_cut(text: str, start: int = 0, end: int | None = None) -> int | None:
    """The largest index ``i`` in ``(start, end)`` where ``text[:i]`` / ``text[i:]`` is a safe cut, or None."""
    end = len(text) if end is None else end
    match = _LAST_SAFE_CUT.search(text, start, end)
    return None if match is None else match.end()


def partial_special_suffix_start(text: str, special_tokens: Sequence[str]) -> int:
    """Start of the longest suffix of ``text`` that could be the beginning of a special token (else len)."""
    for start in range(max(0, len(text) - max((len(t) for t in special_tokens), default=0) + 1), len(text)):
        suffix = text[start:]
        if any(token.startswith(suffix) for token in special_tokens):
            return start
    return len(text)


def find_chunk_boundaries(
    path: str | os.PathLike, desired_chunk_bytes: int, special_tokens: Sequence[str]
) -> list[int]:
    """Byte offsets ``[0, ..., file_size]`` cutting a UTF-8 file into chunks of about ``desired_chunk_bytes``.

    Each inner cut is the first cut at or after the desired offset: the start of a special token, or a safe
    whitespace cut (see the module docstring) unless a special token contains ASCII whitespace (a cut there
    could split it). Chunks are never empty and can be larger than desired only when no cut exists nearby.
    """
    if desired_chunk_bytes <= 0:
        raise ValueError(f"desired_chunk_bytes must be positive, got {desired_chunk_bytes}")
    size = os.path.getsize(path)
    encoded = sorted({t.encode("utf-8") for t in special_tokens}, key=len, reverse=True)
    alternatives = [b"(?P<special>" + b"|".join(regex.escape(t) for t in encoded) + b")"] if encoded else []
    if not any(regex.search(rb"[\t\n\x0b\x0c\r ]", t) for t in encoded):
        alternatives.append(_SAFE_CUT_BYTES.pattern)
    cut_regex = regex.compile(b"|".join(alternatives))
    boundaries = [0]
    with open(path, "rb") as f:
        offset = desired_chunk_bytes
        while offset < size:
            cut = _first_cut_at_or_after(f, offset, size, cut_regex)
            if cut is None:
                break
            if cut > boundaries[-1]:
                boundaries.append(cut)
            offset = max(cut + 1, boundaries[-1] + desired_chunk_bytes)
    if boundaries[-1] != size:
        boundaries.append(size)
    return boundaries


def _first_cut_at_or_after(f, offset: int, size: int, cut_regex: regex.Pattern[bytes]) -> int | None:
    """Scan the file from ``offset`` in windows; the overlap keeps matches that straddle two windows."""
    window, overlap = 1 << 16, 1 << 10
    pos = offset
    while pos < size:
        f.seek(pos)
        data = f.read(window + overlap)
        match = cut_regex.search(data)
        if match is not None:
            return pos + (match.start() if match.groupdict().get("special") else match.end())
        if len(data) < window + overlap:
            return None
        pos += window
    return None


def read_text_range(path: str | os.PathLike, start: int, end: int) -> str:
    """Decode ``[start, end)`` of a UTF-8 file (boundaries from :func:`find_chunk_boundaries`).

    Invalid UTF-8 raises ``ValueError`` naming the file and the byte offset, not a bare ``UnicodeDecodeError``.
    """
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.end]
        raise ValueError(
            f"{os.fspath(path)} is not valid UTF-8: byte offset {start + err.start} ({bad!r}): {err.reason}"
        ) from None
