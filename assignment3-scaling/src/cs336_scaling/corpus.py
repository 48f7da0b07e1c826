"""A tokenised training corpus for the service, built from local text files (no download needed).

The service trains on a flat uint16 token file. This module turns a folder of text files (for instance the
Python standard library's sources, which every Python install carries: tens of MB of real text) into one:
documents are put in a seeded random order (so the held-out tail of the token file is drawn from the same
mix as the training head) and joined with ``<|endoftext|>``, a byte-level BPE is trained on a leading
sample with ``cs336_basics.bpe``, and the text is encoded with ``cs336_basics.tokenizer`` in parallel, in
document order, up to a token cap. ``vocab_size=256`` skips BPE: the tokens are the UTF-8 bytes, and a NUL
byte (which text files do not contain) ends each document; tiny models then spend no parameters on a large
output layer.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cs336_basics.bpe import train_bpe
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import atomic_output, write_json_atomic
from cs336_basics.vocab_files import save_vocab_merges

END_OF_TEXT = "<|endoftext|>"


@dataclass(frozen=True)
class CorpusConfig:
    """Build the service's token file from local text files: by default the Python standard library sources."""

    sources: list[str] = field(
        default_factory=lambda: [sysconfig.get_paths()["stdlib"]], metadata={"help": "files or folders to read"}
    )
    out_dir: str = field(
        default="runs/corpus", metadata={"help": "folder for tokens.bin, corpus.json (and vocab.json, merges.txt)"}
    )
    pattern: str = field(default="*.py", metadata={"help": "file name pattern inside source folders"})
    exclude_dirs: list[str] = field(
        default_factory=lambda: ["test", "tests", "idle_test", "__pycache__", "site-packages"],
        metadata={"help": "folders skipped inside the sources"},
    )
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary; 256: the UTF-8 bytes, no BPE"})
    bpe_sample_bytes: int = field(default=8 << 20, metadata={"help": "train the BPE on this much text"})
    max_tokens: int = field(default=28_000_000, metadata={"help": "stop after this many tokens"})
    seed: int = field(default=0, metadata={"help": "document order"})
    workers: int | None = field(default=None, metadata={"help": "encoding processes (default: every core)"})


def document_paths(config: CorpusConfig) -> list[Path]:
    """Every file matching ``pattern`` under the sources, skipping excluded folders, in a seeded random order."""
    paths: list[Path] = []
    for source in map(Path, config.sources):
        if source.is_file():
            paths.append(source)
            continue
        if not source.is_dir():
            raise FileNotFoundError(f"corpus source {source} is neither a file nor a folder")
        for path in source.rglob(config.pattern):
            relative = path.relative_to(source).parts[:-1]
            if path.is_file() and not set(relative) & set(config.exclude_dirs):
                paths.append(path)
    if not paths:
        raise ValueError(f"no files matching {config.pattern!r} under {config.sources}")
    paths = sorted(paths)
    return [paths[i] for i in np.random.default_rng(config.seed).permutation(len(paths))]


def read_documents(paths: list[Path]) -> Iterator[str]:
    """The UTF-8 text of each file (undecodable bytes replaced), with ``<|endoftext|>`` removed from inside."""
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="replace").replace(END_OF_TEXT, "")
        if text.strip():
            yield text


def _encode_batch(args: tuple[str, str, list[str]]) -> np.ndarray:
    vocab_path, merges_path, documents = args
    tokenizer = Tokenizer.from_files(vocab_path, merges_path, special_tokens=[END_OF_TEXT])
    return np.asarray(tokenizer.encode(END_OF_TEXT.join(documents) + END_OF_TEXT), dtype=np.uint16)


def _batches(documents: Iterator[str], batch_chars: int) -> Iterator[list[str]]:
    batch, size = [], 0
    for document in documents:
        batch.append(document)
        size += len(document)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _byte_batch(documents: list[str]) -> np.ndarray:
    data = b"".join(document.encode("utf-8") + b"\0" for document in documents)
    return np.frombuffer(data, dtype=np.uint8).astype(np.uint16)


def _write_tokens(path: Path, batches: Iterator[np.ndarray], max_tokens: int, progress: bool) -> int:
    """Append token batches to ``path`` atomically, stopping at ``max_tokens``; the count written."""
    written = 0
    with atomic_output(path) as sink:
        for ids in batches:
            ids = ids[: max_tokens - written]
            sink.write(ids.astype("<u2").tobytes())
            written += len(ids)
            if progress:
                print(f"\r{written:,} tokens", end="", flush=True)
            if written >= max_tokens:
                break
    if progress:
        print()
    return written


def build_corpus(config: CorpusConfig, progress: bool = True) -> Path:
    """Write ``tokens.bin`` (uint16) and ``corpus.json`` (and for BPE ``vocab.json``, ``merges.txt``) to ``out_dir``."""
    if not 256 <= config.vocab_size <= 1 << 16:
        raise ValueError(f"vocab_size must be in [256, 65536] (bytes, uint16 ids), got {config.vocab_size}")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = document_paths(config)
    tokens_path = out / "tokens.bin"
    if config.vocab_size == 256:
        batches = map(_byte_batch, _batches(read_documents(paths), 1 << 22))
        written = _write_tokens(tokens_path, batches, config.max_tokens, progress)
        return _write_meta(config, out, len(paths), written, tokens_path)

    sample, size = [], 0
    for document in read_documents(paths):
        sample.append(document)
        size += len(document)
        if size >= config.bpe_sample_bytes:
            break
    sample_path = out / "bpe_sample.txt"
    sample_path.write_text(END_OF_TEXT.join(sample), encoding="utf-8")
    vocab, merges = train_bpe(sample_path, config.vocab_size, [END_OF_TEXT], num_workers=config.workers)
    sample_path.unlink()
    vocab_path, merges_path = out / "vocab.json", out / "merges.txt"
    save_vocab_merges(vocab, merges, vocab_path, merges_path)

    jobs = ((str(vocab_path), str(merges_path), batch) for batch in _batches(read_documents(paths), 1 << 20))
    with ProcessPoolExecutor(config.workers) as pool:
        written = _write_tokens(tokens_path, pool.map(_encode_batch, jobs), config.max_tokens, progress)
    return _write_meta(config, out, len(paths), written, tokens_path)


def _write_meta(config: CorpusConfig, out: Path, files: int, written: int, tokens_path: Path) -> Path:
    meta = {
        "sources": list(config.sources),
        "files": files,
        "tokens": written,
        "vocab_size": config.vocab_size,
        "bpe_sample_bytes": config.bpe_sample_bytes,
        "seed": config.seed,
    }
    write_json_atomic(out / "corpus.json", meta)
    return tokens_path
