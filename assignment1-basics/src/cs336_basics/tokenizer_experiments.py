"""Measurements behind the handout's tokenizer problems (train_bpe_tinystories, train_bpe_expts_owt,
tokenizer_experiments), on the text that is available offline.

Two corpora: a TinyStories file (documents separated by ``<|endoftext|>``; by default the course's 5 MB sample)
and a folder of ``.txt`` documents standing in for OpenWebText (the English of Debian's documentation). From
each, ``sample_documents`` distinct documents are drawn (seeded) and held out, every copy of them removed from
training; the rest is written as one training text, joined by ``<|endoftext|>``. A corpus with too few distinct
documents (the course's 5 MB "TinyStories" sample has 7: see the write-up) is trained on whole and evaluated on
its distinct documents, which ``results.json`` then marks as not held out. Then, with the project's own code:

* ``train_bpe`` on each training text in a fresh process, so its wall time, CPU time and peak resident memory
  (of the trainer, and of its largest pre-tokenisation worker) belong to training alone;
* a cProfile (CPU time) of the same training in one process, split into pre-tokenisation and merging;
* the longest tokens of each vocabulary and the overlap of the two vocabularies;
* bytes per token of every tokenizer on every held-out sample (the cross cases included);
* throughput: ``Tokenizer.encode`` in one process on a cold cache, and ``tokenize_to_memmap`` over all workers
  writing the uint16 token file of each training text (then read back and decoded to check it).
"""

from __future__ import annotations

import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cs336_basics.bpe import train_bpe
from cs336_basics.english_corpus import END_OF_TEXT
from cs336_basics.experiment_corpus import Document, read_documents, write_documents
from cs336_basics.tokenize_dataset import TOKEN_DTYPE, tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.data_paths import shared_path
from cs336_basics.toolkit.tables import markdown_table
from cs336_basics.vocab_files import load_vocab_merges, save_vocab_merges

TINYSTORIES_SAMPLE = "fixtures/assignment1/tinystories_sample_5M.txt"
PILE_BYTES = 825e9
CORPORA = ("tinystories", "docs")


@dataclass
class TokenizerExperimentsConfig:
    """Train both tokenizers, profile, compare compression and measure throughput (paths relative to the cwd)."""

    tinystories: str = field(
        default="", metadata={"help": "TinyStories text, <|endoftext|>-separated (default: the course's 5 MB sample)"}
    )
    docs_dir: str = field(
        default="runs/corpus/english_text",
        metadata={"help": "folder of .txt documents (assignment3-scaling/scripts/debian_text.py builds it)"},
    )
    work_dir: str = field(
        default="runs/tokenizer_experiments", metadata={"help": "training texts, vocab/merges, token files"}
    )
    out_dir: str = field(
        default="assignment1-basics/results/tokenizer_experiments", metadata={"help": "results.json, table.md"}
    )
    tinystories_vocab_size: int = 10_000
    docs_vocab_size: int = 32_000
    sample_documents: int = field(default=10, metadata={"help": "held-out documents per corpus"})
    throughput_bytes: int = field(
        default=16_000_000, metadata={"help": "text for the single-process encode() throughput (per corpus)"}
    )
    seed: int = 0
    num_workers: int | None = field(default=None, metadata={"help": "pre-tokenisation/encoding processes (CPUs)"})
    profile: bool = field(default=True, metadata={"help": "cProfile each BPE training once more, in one process"})
    progress: bool = True

    def __post_init__(self):
        if self.sample_documents < 1:
            raise ValueError(f"sample_documents must be >= 1, got {self.sample_documents}")
        if self.throughput_bytes < 1:
            raise ValueError(f"throughput_bytes must be >= 1, got {self.throughput_bytes}")


def distinct(documents: list[Document]) -> list[Document]:
    """The first document of each distinct text, in order."""
    first: dict[str, Document] = {}
    for document in documents:
        first.setdefault(document.text, document)
    return list(first.values())


def hold_out(documents: list[Document], count: int, seed: int) -> tuple[list[Document], list[Document]]:
    """(training documents, ``count`` distinct held-out documents drawn with ``seed``); every copy of a held-out
    text leaves the training documents, whose order is kept."""
    unique = distinct(documents)
    if count >= len(unique):
        raise ValueError(f"cannot hold out {count} of {len(unique)} distinct documents and still train on something")
    held = [unique[i] for i in sorted(np.random.default_rng(seed).choice(len(unique), size=count, replace=False))]
    held_texts = {d.text for d in held}
    return [d for d in documents if d.text not in held_texts], held


def _measured_training(text_path: str, vocab_size: int, out_dir: str, num_workers: int | None) -> dict[str, Any]:
    """Train and save a tokenizer; meant for a fresh process, whose peak memory is then training's alone."""
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    vocab, merges = train_bpe(text_path, vocab_size, [END_OF_TEXT], num_workers=num_workers)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_before
    save_vocab_merges(vocab, merges, Path(out_dir) / "vocab.json", Path(out_dir) / "merges.txt")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_trainer_mb": _own_peak_rss_mb(),
        # The children are the forked pre-tokenisation workers; ru_maxrss (KiB) is the largest one's peak.
        "peak_rss_largest_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "workers": num_workers or os.cpu_count(),
    }


def _own_peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM``, not ``ru_maxrss``, which on Linux survives ``exec`` and so
    would report at least the parent's memory in a spawned child."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (peak memory is measured on Linux only)")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _in_fresh_process(fn, *args):
    """Run ``fn(*args)`` in a new interpreter (spawned: no memory inherited from this one)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def profile_training(text_path: Path, vocab_size: int, top: int = 8) -> dict[str, Any]:
    """Where BPE training spends its time: ``train_bpe`` in one process under cProfile, timed in CPU seconds of
    this process (other jobs on a shared machine then stretch the wall time, not the profile). C built-ins are not
    profiled separately, which keeps the profiler's overhead on the merge loop small."""
    profiler = cProfile.Profile(time.process_time, builtins=False)
    started = time.process_time()
    profiler.runcall(train_bpe, text_path, vocab_size, [END_OF_TEXT], num_workers=1)
    seconds = time.process_time() - started
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, primitive calls, own s, cumulative s, ...)
    cumulative = {(Path(file).name, name): cum for (file, _, name), (_, _, _, cum, _) in stats.items()}
    phases = {
        "pretokenization": cumulative["bpe.py", "pretoken_counts"],
        "merging": cumulative["bpe.py", "train_bpe_from_counts"],
    }
    by_own_time = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "cpu_seconds_under_profiler": seconds,
        "phases_seconds": phases,
        "phases_share": {phase: s / seconds for phase, s in phases.items()},
        "top_functions_by_own_time": [
            {"function": f"{Path(file).name}:{line}({name})", "calls": calls, "own_s": own, "cumulative_s": cum}
            for (file, line, name), (_, calls, own, cum, _) in by_own_time
        ],
    }


def _printable(token: bytes) -> str:
    return token.decode("utf-8", errors="replace")


def vocabulary_summary(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], longest: int = 5) -> dict:
    """Size, longest tokens and the first tokens merged (the most frequent pairs of the training text)."""
    tokens = sorted(vocab.values(), key=lambda t: (-len(t), t))
    return {
        "vocab_size": len(vocab),
        "merges": len(merges),
        "longest_tokens": [{"token": _printable(t), "bytes": len(t)} for t in tokens[:longest]],
        "first_merges": [_printable(left + right) for left, right in merges[:10]],
    }


def vocabulary_overlap(small: dict[int, bytes], large: dict[int, bytes], examples: int = 12) -> dict[str, Any]:
    """How many tokens the two vocabularies share, and the earliest-merged tokens each has that the other lacks."""
    small_set, large_set = set(small.values()), set(large.values())

    def first_missing(vocab: dict[int, bytes], other: set[bytes]) -> list[str]:
        merged = [vocab[i] for i in sorted(vocab) if len(vocab[i]) > 1 and vocab[i] != END_OF_TEXT.encode()]
        return [_printable(t) for t in merged if t not in other][:examples]

    return {
        "shared_tokens": len(small_set & large_set),
        "tinystories_only_first": first_missing(small, large_set),
        "docs_only_first": first_missing(large, small_set),
    }


def compression(tokenizer: Tokenizer, documents: list[Document]) -> dict[str, float]:
    """Bytes per token over ``documents`` (total bytes / total tokens), and the range over single documents."""
    sizes = [(len(d.text.encode("utf-8")), len(tokenizer.encode(d.text))) for d in documents]
    per_document = [b / t for b, t in sizes]
    total_bytes, total_tokens = sum(b for b, _ in sizes), sum(t for _, t in sizes)
    return {
        "bytes": total_bytes,
        "tokens": total_tokens,
        "bytes_per_token": total_bytes / total_tokens,
        "min_document_bytes_per_token": min(per_document),
        "max_document_bytes_per_token": max(per_document),
        "per_document_tokens": [t for _, t in sizes],
    }


def show_tokens(tokenizer: Tokenizer, text: str) -> list[str]:
    """The pieces ``tokenizer`` cuts ``text`` into (to show qualitatively how a tokenizer handles a text)."""
    return [_printable(tokenizer.vocab[i]) for i in tokenizer.encode(text)]


def encode_throughput(tokenizer: Tokenizer, text: str) -> dict[str, float]:
    """Bytes per second of one ``encode`` call in this process, on a cold pre-token cache (a fresh copy)."""
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, list(tokenizer.special_token_ids))
    started, cpu_before = time.perf_counter(), time.process_time()
    ids = fresh.encode(text)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_before
    size = len(text.encode("utf-8"))
    return {
        "bytes": size,
        "tokens": len(ids),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "bytes_per_second": size / seconds,
        "bytes_per_cpu_second": size / cpu_seconds,
    }


def tokenize_file(tokenizer: Tokenizer, text_path: Path, tokens_path: Path, num_workers: int | None) -> dict[str, Any]:
    """``tokenize_to_memmap`` over all workers, timed; the file is read back and decoded to check it.

    Chunks are at most 8 MiB (the default) but small enough that every worker gets about four of them."""
    workers = num_workers or os.cpu_count() or 1
    size = text_path.stat().st_size
    chunk_bytes = max(1 << 16, min(8 << 20, size // (4 * workers)))
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    count = tokenize_to_memmap(text_path, tokenizer, tokens_path, num_workers=workers, chunk_bytes=chunk_bytes)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_before
    ids = np.memmap(tokens_path, dtype=TOKEN_DTYPE, mode="r")
    return {
        "workers": workers,
        "chunk_bytes": chunk_bytes,
        "bytes": size,
        "tokens": count,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "bytes_per_second": size / seconds,
        "bytes_per_cpu_second": size / cpu_seconds,
        "token_file_bytes": tokens_path.stat().st_size,
        "max_token_id": int(ids.max()),
        "vocab_size": tokenizer.vocab_size,
        "decodes_to_input": decodes_to(tokenizer, ids, text_path),
    }


def decodes_to(tokenizer: Tokenizer, ids: np.ndarray, text_path: Path, block: int = 1 << 20) -> bool:
    """Whether the bytes of the tokens ``ids`` are exactly the file's bytes (compared block by block)."""
    with text_path.open("rb") as f:
        for start in range(0, len(ids), block):
            data = b"".join(map(tokenizer.vocab.__getitem__, ids[start : start + block].tolist()))
            if f.read(len(data)) != data:
                return False
        return f.read(1) == b""


def _read_corpora(cfg: TokenizerExperimentsConfig) -> dict[str, list[Document]]:
    tinystories = Path(cfg.tinystories) if cfg.tinystories else shared_path(TINYSTORIES_SAMPLE)
    docs = Path(cfg.docs_dir)
    if not docs.is_dir():
        raise FileNotFoundError(
            f"documents folder {docs} does not exist; build it with `uv run python "
            "assignment3-scaling/scripts/debian_text.py --debs runs/corpus/debs --out_dir runs/corpus/english_text`"
        )
    return {
        "tinystories": read_documents([str(tinystories)], include_gensim=False),
        "docs": read_documents([str(docs)], include_gensim=False),
    }


def run_tokenizer_experiments(cfg: TokenizerExperimentsConfig) -> dict[str, Any]:
    """Run every measurement; write ``results.json`` and ``table.md`` to ``out_dir``; return the results."""
    work, out = Path(cfg.work_dir), Path(cfg.out_dir)
    load_before = os.getloadavg()
    vocab_sizes = {"tinystories": cfg.tinystories_vocab_size, "docs": cfg.docs_vocab_size}
    corpora, samples, texts, training, profiles, tokenizers, vocabularies = {}, {}, {}, {}, {}, {}, {}
    for name, documents in _read_corpora(cfg).items():
        unique = distinct(documents)
        held_out = len(unique) > cfg.sample_documents
        if held_out:
            train_docs, samples[name] = hold_out(documents, cfg.sample_documents, cfg.seed)
        else:  # too few distinct documents to hold any out: train on all, evaluate on the distinct ones
            train_docs, samples[name] = documents, unique
        texts[name] = work / f"{name}_train.txt"
        texts[name].parent.mkdir(parents=True, exist_ok=True)
        write_documents(train_docs, texts[name])
        corpora[name] = {
            "documents": len(documents),
            "distinct_documents": len(unique),
            "training_documents": len(train_docs),
            "training_bytes": texts[name].stat().st_size,
            "evaluation_documents_held_out": held_out,
            "evaluation_documents": [
                {"source": d.source, "bytes": len(d.text.encode()), "start": d.text[:60]} for d in samples[name]
            ],
        }
        tokenizer_dir = work / f"{name}_bpe"
        tokenizer_dir.mkdir(parents=True, exist_ok=True)
        _progress(cfg, f"training the {name} BPE ({vocab_sizes[name]:,} tokens) on {texts[name]}")
        training[name] = _in_fresh_process(
            _measured_training, str(texts[name]), vocab_sizes[name], str(tokenizer_dir), cfg.num_workers
        )
        if cfg.profile:
            _progress(cfg, f"profiling the {name} BPE training in one process")
            profiles[name] = profile_training(texts[name], vocab_sizes[name])
        vocab, merges = load_vocab_merges(tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt")
        vocabularies[name] = {"requested_vocab_size": vocab_sizes[name], **vocabulary_summary(vocab, merges)}
        tokenizers[name] = Tokenizer(vocab, merges, [END_OF_TEXT])

    _progress(cfg, "compression and throughput")
    ratios = {
        f"{tok}_tokenizer_on_{sample}": compression(tokenizers[tok], samples[sample])
        for tok in CORPORA
        for sample in CORPORA
    }
    example = samples["docs"][0].text[:160]
    throughput = {}
    for name in CORPORA:
        with texts[name].open(encoding="utf-8") as f:
            head = f.read(cfg.throughput_bytes)
        single = encode_throughput(tokenizers[name], head)
        parallel = tokenize_file(tokenizers[name], texts[name], work / f"{name}_train.bin", cfg.num_workers)
        throughput[name] = {
            "encode_single_process": single,
            "tokenize_to_memmap": parallel,
            "pile_hours_single_process": PILE_BYTES / single["bytes_per_second"] / 3600,
            "pile_hours_tokenize_to_memmap": PILE_BYTES / parallel["bytes_per_second"] / 3600,
            "pile_core_hours": PILE_BYTES / single["bytes_per_cpu_second"] / 3600,
        }
    results = {
        "config": asdict(cfg),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "corpora": corpora,
        "training": training,
        "profile": profiles,
        "vocabularies": vocabularies,
        "vocabulary_overlap": vocabulary_overlap(tokenizers["tinystories"].vocab, tokenizers["docs"].vocab),
        "compression": ratios,
        "cross_example": {"text": example, **{name: show_tokens(tokenizers[name], example) for name in CORPORA}},
        "throughput": throughput,
    }
    write_text_atomic(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "table.md", results_table(results))
    return results


def _progress(cfg: TokenizerExperimentsConfig, message: str) -> None:
    if cfg.progress:
        print(message, flush=True)


def results_table(results: dict[str, Any]) -> str:
    """Markdown tables of the results (the numbers the write-up quotes)."""
    machine = results["machine"]
    load = ", ".join(f"{x:.1f}" for x in machine["load_average_before"])
    lines = [
        "# Tokenizer experiments",
        "",
        f"This machine: {machine['cpus']} shared CPU cores, Python {machine['python']}; load average at the start "
        f"{load} (other engineers' jobs were running: wall times are under load, CPU times less so).",
        "",
        "## BPE training (fresh process)",
        "",
    ]
    headers = ["corpus", "training text", "vocab (requested)", "wall s", "CPU s (all processes)"]
    headers += ["peak RSS trainer", "peak RSS largest worker", "longest token"]
    rows = []
    for name in CORPORA:
        run, corpus, vocab = results["training"][name], results["corpora"][name], results["vocabularies"][name]
        longest = vocab["longest_tokens"][0]
        rows.append([
            name,
            f"{corpus['training_bytes'] / 1e6:.1f} MB, {corpus['training_documents']:,} docs "
            f"({corpus['distinct_documents']:,} distinct in the corpus)",
            f"{vocab['vocab_size']:,} ({vocab['requested_vocab_size']:,})",
            f"{run['seconds']:.1f}",
            f"{run['cpu_seconds']:.1f}",
            f"{run['peak_rss_trainer_mb']:,.0f} MB",
            f"{run['peak_rss_largest_worker_mb']:,.0f} MB",
            f"{json.dumps(longest['token'], ensure_ascii=False)} ({longest['bytes']} B)",
        ])  # fmt: skip
    lines.append(markdown_table(headers, rows))
    if results["profile"]:
        lines += ["", "## Profile of BPE training (one process, cProfile in CPU seconds)", ""]
        rows = []
        for name, prof in results["profile"].items():
            pre, merge = prof["phases_seconds"]["pretokenization"], prof["phases_seconds"]["merging"]
            share = prof["phases_share"]
            rows.append([
                name,
                f"{prof['cpu_seconds_under_profiler']:.1f}",
                f"{pre:.1f} ({share['pretokenization']:.0%})",
                f"{merge:.1f} ({share['merging']:.0%})",
            ])  # fmt: skip
        headers = ["corpus", "total CPU s", "pre-tokenisation (share)", "merging (share)"]
        lines.append(markdown_table(headers, rows))
        for name, prof in results["profile"].items():
            lines += ["", f"Top functions by own time ({name}):", ""]
            rows = [
                [f"`{row['function']}`", f"{row['calls']:,}", f"{row['own_s']:.2f}", f"{row['cumulative_s']:.2f}"]
                for row in prof["top_functions_by_own_time"]
            ]
            lines.append(markdown_table(["function", "calls", "own s", "cumulative s"], rows))
    lines += _compression_lines(results)
    lines += ["", "## Throughput (each tokenizer on its own training text)", ""]
    headers = ["tokenizer", "encode(), 1 process", "per CPU second", "tokenize_to_memmap", "Pile (825 GB): 1 process"]
    headers += ["Pile: tokenize_to_memmap", "Pile: CPU core-hours", "token file", "max id < vocab", "bytes match input"]
    rows = []
    for name in CORPORA:
        t = results["throughput"][name]
        single, memmap = t["encode_single_process"], t["tokenize_to_memmap"]
        rows.append([
            name,
            f"{single['bytes_per_second'] / 1e6:.2f} MB/s ({single['bytes'] / 1e6:.1f} MB)",
            f"{single['bytes_per_cpu_second'] / 1e6:.2f} MB/s",
            f"{memmap['bytes_per_second'] / 1e6:.2f} MB/s "
            f"({memmap['workers']} workers, {memmap['bytes'] / 1e6:.1f} MB)",
            f"{t['pile_hours_single_process']:,.0f} h",
            f"{t['pile_hours_tokenize_to_memmap']:,.0f} h",
            f"{t['pile_core_hours']:,.0f}",
            f"{memmap['tokens']:,} tokens, {memmap['token_file_bytes'] / 1e6:.1f} MB",
            f"{memmap['max_token_id']:,} < {memmap['vocab_size']:,}",
            memmap["decodes_to_input"],
        ])  # fmt: skip
    lines.append(markdown_table(headers, rows))
    return "\n".join(lines) + "\n"


def _compression_lines(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Compression (bytes per token)", ""]
    for sample in CORPORA:
        corpus = results["corpora"][sample]
        status = "held out" if corpus["evaluation_documents_held_out"] else "NOT held out (too few distinct documents)"
        lines.append(f"- {sample}: {len(corpus['evaluation_documents'])} evaluation documents, {status}")
    rows = []
    for tok in CORPORA:
        cells = [tok]
        for sample in CORPORA:
            r = results["compression"][f"{tok}_tokenizer_on_{sample}"]
            cells.append(
                f"{r['bytes_per_token']:.2f} ({r['bytes']:,} B / {r['tokens']:,} tok; per document "
                f"{r['min_document_bytes_per_token']:.2f}-{r['max_document_bytes_per_token']:.2f})"
            )
        rows.append(cells)
    lines += ["", markdown_table(["tokenizer", *(f"on {sample} documents" for sample in CORPORA)], rows)]
    for sample in CORPORA:
        lines += ["", f"Per document ({sample}):", ""]
        rows = []
        for i, doc in enumerate(results["corpora"][sample]["evaluation_documents"]):
            cells = [json.dumps(f"{doc['source']}: {doc['start'][:40]}", ensure_ascii=False), f"{doc['bytes']:,}"]
            for tok in CORPORA:
                tokens = results["compression"][f"{tok}_tokenizer_on_{sample}"]["per_document_tokens"][i]
                cells.append(f"{tokens:,} ({doc['bytes'] / tokens:.2f})")
            rows.append(cells)
        headers = ["document", "bytes", *(f"{tok} tokenizer: tokens (B/tok)" for tok in CORPORA)]
        lines.append(markdown_table(headers, rows))
    return lines
