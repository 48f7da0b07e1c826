"""Token files for the filter-versus-raw experiment: the raw crawl's text, its filtered outputs, clean held-out text.

Steps (each reused when its output exists): build the sample crawl; run the pipeline on its WARC shards twice, with
the default filters and with the quality classifier off (``min_quality=0``), logging every decision; write the
corpora as text (documents separated by ``<|endoftext|>``):

* ``raw``: the extracted text of every page (the pipeline's ``extract`` step, nothing filtered);
* ``filtered``: the default pipeline's output (language, Gopher, quality, NSFW, toxic, PII, both dedups);
* ``filtered_no_quality``: the same without the quality classifier;
* ``heldout_docs`` / ``heldout_articles``: the crawl's held-out documentation and article pages (never crawled;
  lines that occur in the crawl removed).

Options for the experiment that separates what a filter keeps from how much it keeps:

* ``filtered_heldout``: ``heldout_<pipeline>`` per pipeline, the held-out pages that pipeline keeps, drawn like its
  output, with every overlap with the training corpora and the quality classifier's positives checked and removed
  (:mod:`.heldout`; the checks in ``data/heldout_overlap.json``);
* ``equal_unique_raw``: ``raw_as_<pipeline>``, random whole raw documents (seed 0) up to exactly the tokens of that
  pipeline's output (the last one cut short), so that both are read the same number of epochs.

The tokenizer is a byte-level BPE trained on the raw corpus: the text a practitioner has before filtering, of which
each filtered corpus is a subset; no held-out text shapes it. Out: ``<out_dir>/data/<name>.bin`` (uint16), the
tokenizer, ``meta.json`` (documents, characters and tokens per corpus). The GPU run needs only ``<out_dir>/data``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from cs336_basics.toolkit.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from jaxtyping import UInt16

from cs336_data.crawl.build import HELDOUT_SHARD, PRESETS, CrawlConfig, build_crawl
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.executors import available_cpus
from cs336_data.pipeline.run import PipelineConfig, run_pipeline
from cs336_data.warc_io import iter_warc_responses

EOS = "<|endoftext|>"
PIPELINES = {"filtered": {}, "filtered_no_quality": {"min_quality": 0.0}}


@dataclass(frozen=True)
class PrepareConfig:
    """Token files for the filter-versus-raw experiment (every step cached)."""

    crawl: Path = field(
        default=Path("assignment4-data/runs/crawl"), metadata={"help": "sample crawl (built if missing)"}
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw"), metadata={"help": "pipelines, text/ and data/ go here"}
    )
    preset: Literal["full", "large", "small"] = field(
        default="full", metadata={"help": "crawl (large: twelve more manuals; small: a quick check)"}
    )
    vocab_size: int = field(default=8192, metadata={"help": "BPE vocabulary size (at most 65536: uint16 ids)"})
    workers: int = field(default=available_cpus(), metadata={"help": "processes for the pipeline, BPE, tokenising"})
    filtered_heldout: bool = field(
        default=False, metadata={"help": "also heldout_<pipeline>: held-out pages that pipeline keeps, overlap-checked"}
    )
    equal_unique_raw: bool = field(
        default=False, metadata={"help": "also raw_as_<pipeline>: raw documents cut to that pipeline's tokens"}
    )

    def __post_init__(self):
        if not 256 + 1 <= self.vocab_size <= 1 << 16:
            raise ValueError(f"vocab_size must lie in [257, 65536] (bytes, EOS, uint16 ids), got {self.vocab_size}")
        if self.workers < 1:
            raise ValueError(f"workers must be positive, got {self.workers}")


def write_corpus(path: Path, texts: list[str]) -> dict[str, int]:
    """Documents joined by EOS, written atomically; returns documents and characters."""
    write_text_atomic(path, "".join(t + EOS for t in texts))
    return {"documents": len(texts), "characters": sum(map(len, texts))}


def raw_texts(shards: list[Path]) -> list[str]:
    """Every page's extracted text (empty extractions dropped, as the pipeline's extract step does)."""
    texts = []
    for shard in shards:
        for page in iter_warc_responses(shard):
            text = extract_text_from_html_bytes(page.body) or ""
            if text.strip():
                texts.append(text)
    return texts


def pipeline_texts(shards: list[Path], out: Path, settings: dict, workers: int) -> list[str]:
    config = PipelineConfig(inputs=shards, out_dir=out, log_decisions=True, workers=workers, **settings)
    run_pipeline(config)
    return [Document.from_json(line).text for path in sorted((out / "final").glob("*.jsonl")) for line in jsonl(path)]


def jsonl(path: Path) -> list[str]:
    """Lines of a JSONL file, split on newlines only (``str.splitlines`` also splits inside strings at U+2028)."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def cut_to_tokens(
    tokens: UInt16[np.ndarray, " tokens"], eos: int, target: int, seed: int = 0
) -> UInt16[np.ndarray, " target"]:
    """Whole documents (each ending in ``eos``) in a seeded random order until ``target`` tokens, the last one cut
    short: a random sample of the corpus with exactly ``target`` unique tokens."""
    ends = np.flatnonzero(tokens == eos) + 1
    if target > len(tokens) or len(ends) == 0 or ends[-1] != len(tokens):
        raise ValueError(f"cannot cut {target} tokens of whole documents from a corpus of {len(tokens)} tokens")
    starts = np.concatenate([[0], ends[:-1]])
    pieces, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(ends)):
        pieces.append(tokens[starts[i] : min(ends[i], starts[i] + target - total)])
        total += len(pieces[-1])
        if total == target:
            break
    return np.concatenate(pieces)


def write_filtered_heldout(config: PrepareConfig, text_dir: Path, data_dir: Path) -> None:
    """``heldout_<pipeline>.txt`` per pipeline and ``heldout_overlap.json`` (see :mod:`.heldout`)."""
    from cs336_data.filter_experiment.heldout import (
        OverlapChecks,
        build_references,
        clean_heldout,
        page_labels,
        pipeline_documents,
        quality_positive_texts,
    )

    names = [f"heldout_{name}" for name in PIPELINES]
    if all((text_dir / f"{name}.txt").exists() for name in names) and (data_dir / "heldout_overlap.json").exists():
        return
    checks = OverlapChecks()
    training = {name: corpus_texts(text_dir / f"{name}.txt") for name in ("raw", *PIPELINES)}
    references = build_references({**training, "quality_positives": quality_positive_texts()}, checks)
    labels = page_labels(config.crawl / "labels" / f"{HELDOUT_SHARD}.jsonl")
    report = {}
    for name, settings in PIPELINES.items():
        out = config.out_dir / f"pipeline_heldout_{name}"
        documents = pipeline_documents(config.crawl / f"{HELDOUT_SHARD}.warc.gz", out, settings, config.workers)
        texts, report[f"heldout_{name}"] = clean_heldout(documents, labels, references, checks)
        report[f"heldout_{name}"] = {"pages": len(labels), **report[f"heldout_{name}"]}
        write_corpus(text_dir / f"heldout_{name}.txt", texts)
    write_json_atomic(data_dir / "heldout_overlap.json", report, indent=1)


def corpus_texts(path: Path) -> list[str]:
    """The documents of a corpus text file (EOS-separated)."""
    return path.read_text(encoding="utf-8").split(EOS)[:-1]


def write_equal_unique_raw(data_dir: Path, corpora: dict[str, dict], tokenizer) -> None:
    """``raw_as_<pipeline>.bin`` per pipeline (see :func:`cut_to_tokens`), added to ``corpora``."""
    eos = tokenizer.special_token_ids[EOS]
    raw = np.fromfile(data_dir / "raw.bin", dtype=np.uint16)
    for name in PIPELINES:
        path = data_dir / f"raw_as_{name}.bin"
        if not path.exists():
            write_bytes_atomic(path, cut_to_tokens(raw, eos, corpora[name]["tokens"]).tobytes())
        tokens = np.fromfile(path, dtype=np.uint16)
        corpora[f"raw_as_{name}"] = {
            "documents": int((tokens == eos).sum()) + int(tokens[-1] != eos),
            "characters": len(tokenizer.decode(tokens[tokens != eos].tolist())),
            "tokens": len(tokens),
        }


def prepare_filter_experiment(config: PrepareConfig) -> dict:
    """Write every corpus's text and token file and ``data/meta.json``; returns the meta."""
    from cs336_basics.bpe import train_bpe
    from cs336_basics.tokenize_dataset import tokenize_to_memmap
    from cs336_basics.tokenizer import Tokenizer
    from cs336_basics.vocab_files import save_vocab_merges

    build_crawl(CrawlConfig(out_dir=config.crawl, **PRESETS[config.preset]))
    shards = sorted(config.crawl.glob("CC-SAMPLE-*.warc.gz"))
    text_dir, data_dir = config.out_dir / "text", config.out_dir / "data"
    text_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)

    if not (text_dir / "raw.txt").exists():
        write_corpus(text_dir / "raw.txt", raw_texts(shards))
    for name, settings in PIPELINES.items():
        if not (text_dir / f"{name}.txt").exists():
            texts = pipeline_texts(shards, config.out_dir / f"pipeline_{name}", settings, config.workers)
            write_corpus(text_dir / f"{name}.txt", texts)
    heldout = [json.loads(line) for line in jsonl(config.crawl / "heldout.jsonl")]
    for name, kind in (("heldout_docs", "documentation"), ("heldout_articles", "article")):
        write_corpus(text_dir / f"{name}.txt", [d["text"] for d in heldout if d["kind"] == kind])
    if config.filtered_heldout:
        write_filtered_heldout(config, text_dir, data_dir)

    vocab_path, merges_path = data_dir / "vocab.json", data_dir / "merges.txt"
    if not vocab_path.exists():
        vocab, merges = train_bpe(text_dir / "raw.txt", config.vocab_size, [EOS], num_workers=config.workers)
        save_vocab_merges(vocab, merges, vocab_path, merges_path)
    tokenizer = Tokenizer.from_files(vocab_path, merges_path, special_tokens=[EOS])
    corpora: dict[str, dict] = {}
    for text_path in sorted(text_dir.glob("*.txt")):
        name = text_path.stem
        bin_path = data_dir / f"{name}.bin"
        if not bin_path.exists():
            tokenize_to_memmap(text_path, tokenizer, bin_path, num_workers=config.workers)
        text = text_path.read_text(encoding="utf-8")
        corpora[name] = {
            "documents": text.count(EOS),
            "characters": len(text) - len(EOS) * text.count(EOS),
            "tokens": bin_path.stat().st_size // 2,
        }
    if config.equal_unique_raw:
        write_equal_unique_raw(data_dir, corpora, tokenizer)
    meta = {"tokenizer": "byte-level BPE trained on raw.txt", "vocab_size": tokenizer.vocab_size, "corpora": corpora}
    write_json_atomic(data_dir / "meta.json", meta, indent=1)
    return meta
