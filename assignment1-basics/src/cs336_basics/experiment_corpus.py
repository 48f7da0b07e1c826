"""A real-English corpus for the assignment-1 experiments that fits one GPU call (uint16 tokens, ~26 M).

The experiments run on a machine with no network that receives at most 64 MiB per call, so TinyStories (2 GB)
and OpenWebText cannot travel. This module builds a corpus from text that is available offline:

* folders of ``.txt`` files, one document each (e.g. the deduplicated English of Debian's documentation packages
  that ``assignment3-scaling/scripts/debian_text.py`` extracts: manuals, Perl pods, Vim help, dictionaries);
* text files of documents separated by ``<|endoftext|>`` (e.g. the course's 5 MB TinyStories sample);
* gensim's bundled Lee news and Wikipedia prose (:mod:`cs336_basics.english_corpus`).

Exact duplicate documents are dropped (the first copy is kept) and the rest put in a seeded random order; the
first ones (``valid_chars`` of text) are held out, so no validation text is ever trained on. A byte-level BPE is
trained on a sample of the training documents only, the training text is encoded up to ``max_train_tokens`` (cut
after a whole document) and ``corpus.json`` records what went in: documents and characters per source and split,
duplicates dropped, tokens, and the files' SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cs336_basics.bpe import train_bpe
from cs336_basics.english_corpus import END_OF_TEXT, lee_documents, wikipedia_documents
from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import atomic_output, write_text_atomic
from cs336_basics.vocab_files import save_vocab_merges


@dataclass
class ExperimentCorpusConfig:
    """Which text goes in, how it is split and tokenised (every field is a flag of ``build_experiment_corpus.py``)."""

    sources: list[str] = field(
        default_factory=list,
        metadata={"help": "folders of .txt documents, or files of documents separated by <|endoftext|>"},
    )
    out_dir: str = field(default="runs/experiment_corpus", metadata={"help": "vocab, merges, train/valid .bin"})
    include_gensim: bool = field(default=True, metadata={"help": "add gensim's Lee news and Wikipedia prose"})
    vocab_size: int = 10_000
    bpe_sample_chars: int = field(default=40_000_000, metadata={"help": "training text the BPE is trained on"})
    max_train_tokens: int = 26_000_000
    valid_chars: int = field(default=4_000_000, metadata={"help": "held-out documents, in characters"})
    seed: int = 0
    progress: bool = True


@dataclass(frozen=True)
class Document:
    source: str
    text: str


def read_documents(sources: list[str], include_gensim: bool) -> list[Document]:
    """Every non-empty document of every source, labelled by source (a folder's first-level subfolder, or the
    file's name), with ``<|endoftext|>`` removed from inside documents."""
    documents: list[Document] = []
    for source in map(Path, sources):
        if source.is_dir():
            paths = sorted(p for p in source.rglob("*.txt") if p.is_file())
            if not paths:
                raise ValueError(f"corpus source folder {source} holds no .txt files")
            for path in paths:
                relative = path.relative_to(source).parts
                label = relative[0] if len(relative) > 1 else source.name
                documents.append(Document(label, path.read_text(encoding="utf-8", errors="replace")))
        elif source.is_file():
            text = source.read_text(encoding="utf-8", errors="replace")
            documents.extend(Document(source.stem, part) for part in text.split(END_OF_TEXT))
        else:
            raise FileNotFoundError(f"corpus source {source} is neither a folder nor a file")
    if include_gensim:
        documents.extend(Document("gensim-lee-news", text) for text in lee_documents())
        documents.extend(Document("gensim-wikipedia", text) for text in wikipedia_documents())
    documents = [Document(d.source, d.text.replace(END_OF_TEXT, "").strip()) for d in documents]
    documents = [d for d in documents if d.text]
    if not documents:
        raise ValueError("no documents: give --sources (or keep --include_gensim)")
    return documents


def drop_duplicates(documents: list[Document]) -> tuple[list[Document], int]:
    """The first copy of every distinct text, and how many copies were dropped. Without this, copies of one
    document (the course's 5 MB TinyStories sample repeats a few texts dozens of times) land on both sides of the
    train/validation split and the validation loss rewards memorisation."""
    seen: set[str] = set()
    unique = []
    for document in documents:
        if document.text not in seen:
            seen.add(document.text)
            unique.append(document)
    return unique, len(documents) - len(unique)


def split_documents(documents: list[Document], valid_chars: int, seed: int) -> tuple[list[Document], list[Document]]:
    """Shuffle (seeded) and hold out the first documents, about ``valid_chars`` characters, for validation."""
    order = np.random.default_rng(seed).permutation(len(documents))
    shuffled = [documents[i] for i in order]
    held, chars = 0, 0
    while held < len(shuffled) - 1 and chars < valid_chars:
        chars += len(shuffled[held].text)
        held += 1
    return shuffled[held:], shuffled[:held]


def write_documents(documents: list[Document], path: Path, max_chars: int | None = None) -> list[Document]:
    """Write documents joined by ``<|endoftext|>`` (atomically), stopping after ``max_chars``; return those written."""
    written, chars = [], 0
    with atomic_output(path) as f:
        for document in documents:
            if max_chars is not None and chars >= max_chars:
                break
            f.write((document.text + END_OF_TEXT).encode("utf-8"))
            chars += len(document.text)
            written.append(document)
    return written


def cut_after_document(tokens_path: Path, max_tokens: int, end_of_text: int) -> int:
    """Truncate a token file after the last whole document within ``max_tokens``; return the documents kept."""
    tokens = np.memmap(tokens_path, dtype="<u2", mode="r")
    ends = np.flatnonzero(tokens[:max_tokens] == end_of_text)
    if len(ends) == 0:
        raise ValueError(f"{tokens_path}: no whole document fits in {max_tokens} tokens")
    keep = int(ends[-1]) + 1
    kept_documents = len(ends)
    del tokens
    with open(tokens_path, "r+b") as f:
        f.truncate(2 * keep)
    return kept_documents


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _per_source(documents: list[Document]) -> dict[str, dict[str, int]]:
    counts, chars = Counter(d.source for d in documents), Counter()
    for d in documents:
        chars[d.source] += len(d.text)
    return {source: {"documents": counts[source], "characters": chars[source]} for source in sorted(counts)}


def build_experiment_corpus(cfg: ExperimentCorpusConfig) -> dict[str, Any]:
    """Build ``vocab.json``, ``merges.txt``, ``train.bin``, ``valid.bin`` and ``corpus.json`` under ``out_dir``."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    documents, duplicates = drop_duplicates(read_documents(cfg.sources, cfg.include_gensim))
    train_docs, valid_docs = split_documents(documents, cfg.valid_chars, cfg.seed)

    sample_path = out / "bpe_sample.txt"
    write_documents(train_docs, sample_path, cfg.bpe_sample_chars)
    bpe_started = time.perf_counter()
    vocab, merges = train_bpe(sample_path, cfg.vocab_size, [END_OF_TEXT], progress=cfg.progress)
    bpe_seconds = time.perf_counter() - bpe_started
    save_vocab_merges(vocab, merges, out / "vocab.json", out / "merges.txt")
    tokenizer = Tokenizer(vocab, merges, [END_OF_TEXT])
    end_of_text = tokenizer.special_token_ids[END_OF_TEXT]

    # Characters per token on the sample, to write only the training text the token cap needs (plus a margin).
    probe = sample_path.read_text(encoding="utf-8")[:2_000_000]
    chars_per_token = len(probe) / max(len(tokenizer.encode(probe)), 1)
    sample_path.unlink()
    train_text, valid_text = out / "train.txt", out / "valid.txt"
    train_docs = write_documents(train_docs, train_text, int(1.1 * cfg.max_train_tokens * chars_per_token))
    write_documents(valid_docs, valid_text)

    encode_started = time.perf_counter()
    counts = {}
    for split, text_path in (("train", train_text), ("valid", valid_text)):
        counts[split] = tokenize_to_memmap(text_path, tokenizer, out / f"{split}.bin", progress=cfg.progress)
    encode_seconds = time.perf_counter() - encode_started
    encoded_bytes = train_text.stat().st_size + valid_text.stat().st_size
    if counts["train"] > cfg.max_train_tokens:
        kept = cut_after_document(out / "train.bin", cfg.max_train_tokens, end_of_text)
        train_docs = train_docs[:kept]
        counts["train"] = (out / "train.bin").stat().st_size // 2
    train_text.unlink()
    valid_text.unlink()

    summary = {
        "config": asdict(cfg),
        "vocab_size": len(vocab),
        "tokens": counts,
        "characters": {"train": sum(len(d.text) for d in train_docs), "valid": sum(len(d.text) for d in valid_docs)},
        "documents": {"train": _per_source(train_docs), "valid": _per_source(valid_docs)},
        "duplicate_documents_dropped": duplicates,
        "chars_per_token": chars_per_token,
        "bpe_seconds": bpe_seconds,
        "encode_megabytes_per_second": encoded_bytes / 1e6 / encode_seconds,
        "seconds": time.perf_counter() - started,
        "sha256": {name: sha256(out / name) for name in ("train.bin", "valid.bin", "vocab.json", "merges.txt")},
    }
    write_text_atomic(out / "corpus.json", json.dumps(summary, indent=2) + "\n")
    return summary
