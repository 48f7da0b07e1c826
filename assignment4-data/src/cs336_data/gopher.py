"""The handout's subset of the Gopher quality rules (Rae et al., 2021, appendix A).

Words are NLTK's Treebank-style tokens, token for token, from :class:`cs336_data.treebank_words.ChunkTokenizer`
(loaded on first use: importing NLTK takes seconds).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cs336_data.treebank_words import ChunkTokenizer

# str.splitlines' line boundaries; a line counts as ending in an ellipsis when line.rstrip() does
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ELLIPSIS_LINE_END = re.compile(f"(?:\\.\\.\\.|…)[^\\S{_LINE_BREAKS}]*(?=[{_LINE_BREAKS}]|\\Z)")


@functools.cache
def _tokenizer() -> ChunkTokenizer:
    from cs336_data.treebank_words import ChunkTokenizer

    return ChunkTokenizer()


@dataclass(frozen=True)
class GopherConfig:
    """The rules' limits (the handout's values by default)."""

    min_words: int = field(default=50, metadata={"help": "fewest words a document may have"})
    max_words: int = field(default=100_000, metadata={"help": "most words a document may have"})
    min_mean_word_length: float = field(default=3.0, metadata={"help": "shortest mean word length (characters)"})
    max_mean_word_length: float = field(default=10.0, metadata={"help": "longest mean word length (characters)"})
    max_ellipsis_line_fraction: float = field(default=0.3, metadata={"help": "largest share of lines ending in ..."})
    min_alphabetic_word_fraction: float = field(
        default=0.8, metadata={"help": "smallest share of words with at least one letter"}
    )


def words_of(text: str) -> list[str]:
    """NLTK's Treebank-style word tokens (``word_tokenize`` without the sentence splitter, which needs downloads)."""
    return _tokenizer().tokenize(text)


def gopher_rejection_reason(text: str, config: GopherConfig = GopherConfig()) -> str | None:
    """Name of the first rule the text breaks, or None when it passes them all."""
    statistics = _tokenizer().statistics(text, max_chunks=config.max_words)
    if statistics is None:
        return "word_count"
    words, length, alphabetic = statistics
    if not words or not config.min_words <= words <= config.max_words:
        return "word_count"
    if not config.min_mean_word_length <= length / words <= config.max_mean_word_length:
        return "mean_word_length"
    lines = len(text.splitlines())
    if lines and len(_ELLIPSIS_LINE_END.findall(text)) / lines > config.max_ellipsis_line_fraction:
        return "ellipsis_lines"
    if alphabetic / words < config.min_alphabetic_word_fraction:
        return "alphabetic_words"
    return None


def gopher_quality_filter(text: str, config: GopherConfig = GopherConfig()) -> bool:
    """True when the document passes (keep it)."""
    return gopher_rejection_reason(text, config) is None
