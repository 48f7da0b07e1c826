"""Text normalisation before fuzzy matching (RefinedWeb, Penedo et al. 2023): near-duplicates that differ only in
case, accents, punctuation or spacing should get identical n-grams."""

from __future__ import annotations

import unicodedata

import regex

# After NFD, accents are separate combining marks (\p{Mn}); punctuation is \p{P}. Both are deleted.
_MARKS_AND_PUNCTUATION = regex.compile(r"[\p{Mn}\p{P}]+")


def normalize_for_dedup(text: str) -> str:
    """Lowercase, NFD, accents and punctuation removed, whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFD", text.lower())
    return " ".join(_MARKS_AND_PUNCTUATION.sub("", text).split())


def word_ngrams(text: str, n: int) -> set[str]:
    """Set of word n-grams of the normalised text; a document shorter than n words is its own single n-gram."""
    words = normalize_for_dedup(text).split()
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
