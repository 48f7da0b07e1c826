"""Real English text that is available offline: the corpora shipped inside the ``gensim`` wheel's test data.

* the Lee news corpus (``lee_background.cor`` + ``lee.cor``): 350 Australian news articles, one per line;
* an English Wikipedia excerpt (``enwiki-latest-pages-articles1…-shortened.bz2``): about 200 articles of
  MediaWiki markup, reduced to their prose paragraphs (markup, headings, lists and tables dropped).

This lets the demo train a tokenizer and a language model on genuine text with no download. Documents are
separated by ``<|endoftext|>``, as in TinyStories and OpenWebText.
"""

from __future__ import annotations

import bz2
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cs336_basics.toolkit.atomic import write_text_atomic

END_OF_TEXT = "<|endoftext|>"
LEE_FILES = ("lee_background.cor", "lee.cor")
WIKIPEDIA_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_MIN_PARAGRAPH_CHARS = 80
_EMPHASIS = re.compile(r"'{2,}")


def gensim_data_path(name: str) -> Path:
    """Path of a file in gensim's bundled test data (a clear error when gensim is missing or lacks it)."""
    try:
        from gensim.test.utils import datapath
    except ImportError as err:
        raise RuntimeError("the offline English corpus comes from the gensim package: `uv sync` installs it") from err
    path = Path(datapath(name))
    if not path.is_file():
        raise FileNotFoundError(f"gensim's test data has no {name} (looked at {path})")
    return path


def lee_documents() -> Iterator[str]:
    """The Lee news articles, one string each."""
    for name in LEE_FILES:
        with gensim_data_path(name).open(encoding="latin-1") as f:  # lee.cor writes £ as byte 0xa3
            yield from (line.strip() for line in f if line.strip())


def wikipedia_documents() -> Iterator[str]:
    """Prose of the bundled Wikipedia articles: paragraphs of plain sentences, redirects and stubs skipped."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    with bz2.open(gensim_data_path(WIKIPEDIA_FILE)) as f:
        for _title, markup, _page_id in extract_pages(f):
            paragraphs = [_prose(line) for line in filter_wiki(markup).splitlines()]
            text = "\n\n".join(p for p in paragraphs if p)
            if text:
                yield text


def _prose(line: str) -> str | None:
    """A paragraph of running text, or None for headings, list items, tables, templates and short fragments."""
    line = _EMPHASIS.sub("", line).strip()
    if len(line) < _MIN_PARAGRAPH_CHARS or not (line[0].isalnum() or line[0] == '"'):
        return None
    return line


@dataclass(frozen=True)
class CorpusFiles:
    train: Path
    valid: Path
    documents: int
    train_bytes: int
    valid_bytes: int


def write_english_corpus(
    out_dir: str | os.PathLike, include_wikipedia: bool = True, valid_every: int = 10
) -> CorpusFiles:
    """Write ``train.txt`` and ``valid.txt`` (every ``valid_every``-th document) joined by ``<|endoftext|>``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    documents = list(lee_documents())
    if include_wikipedia:
        documents += wikipedia_documents()
    splits: dict[str, list[str]] = {"train": [], "valid": []}
    for index, document in enumerate(documents):
        splits["valid" if index % valid_every == valid_every - 1 else "train"].append(document)
    paths = {}
    for name, docs in splits.items():
        paths[name] = write_text_atomic(out_dir / f"{name}.txt", "".join(doc + END_OF_TEXT for doc in docs))
    return CorpusFiles(
        paths["train"],
        paths["valid"],
        len(documents),
        paths["train"].stat().st_size,
        paths["valid"].stat().st_size,
    )
