"""Encoding throughput, single thread: ``cs336_basics.tokenizer.Tokenizer`` against tiktoken's ``gpt2`` (Rust).

Both use GPT-2's vocabulary and merges (the course fixtures, byte-identical to tiktoken's files), encode the
same >= 10 MB of real English (see ``english_text.py``) with ``<|endoftext|>`` allowed, and must produce the
same ids. Our tokenizer starts with an empty pre-token cache, so the first pass includes every BPE merge it
runs; a second pass over the same text shows the cached steady state.

    uv run python assignment1-basics/benchmarks/bench_encode.py [--text FILE] [--out_dir DIR]
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.tiktoken_offline import load_gpt2_encoding
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.data_paths import shared_path
from cs336_basics.toolkit.tables import markdown_table
from english_text import COURSE_FIXTURES_URL, build_english_text

EOT = "<|endoftext|>"


@dataclass(frozen=True)
class BenchEncodeConfig:
    """Single-thread encoding throughput of our tokenizer against tiktoken's gpt2, same text, same ids."""

    text: Path | None = field(default=None, metadata={"help": "UTF-8 text to encode (none: built, >= 10 MB)"})
    out_dir: Path = field(
        default=Path("runs/bench"), metadata={"help": "folder for english.txt (when built) and bench_encode.json"}
    )


def timed(function, *args) -> tuple[float, list[int]]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main(config: BenchEncodeConfig) -> None:
    path, sources = (
        (config.text, [str(config.text)]) if config.text else build_english_text(config.out_dir / "english.txt")
    )
    text = path.read_text(encoding="utf-8")
    size_mb = len(text.encode("utf-8")) / 1e6

    vocab = shared_path("fixtures/assignment1/gpt2_vocab.json", COURSE_FIXTURES_URL + "gpt2_vocab.json")
    merges = shared_path("fixtures/assignment1/gpt2_merges.txt", COURSE_FIXTURES_URL + "gpt2_merges.txt")
    with tempfile.TemporaryDirectory() as cache:
        encoding = load_gpt2_encoding(cache, vocab, merges)
    tokenizer = Tokenizer.from_files(vocab, merges, [EOT])

    theirs, expected = timed(lambda t: encoding.encode(t, allowed_special={EOT}), text)
    cold, ids = timed(tokenizer.encode, text)
    warm, _ = timed(tokenizer.encode, text)
    if ids != expected:
        raise RuntimeError("cs336_basics and tiktoken disagree on the token ids")
    result = {
        "text_mb": round(size_mb, 2),
        "sources": sources,
        "tokens": len(ids),
        "tiktoken_mb_per_s": round(size_mb / theirs, 2),
        "cs336_basics_cold_mb_per_s": round(size_mb / cold, 2),
        "cs336_basics_warm_mb_per_s": round(size_mb / warm, 2),
        "ratio_cold": round(theirs / cold, 3),
        "ratio_warm": round(theirs / warm, 3),
    }
    write_json_atomic(config.out_dir / "bench_encode.json", result)
    print(f"text: {size_mb:.1f} MB, {len(ids):,} GPT-2 tokens ({'; '.join(sources)}); identical ids: yes\n")
    rows = [
        ["tiktoken gpt2", f"{theirs:.2f}", f"{size_mb / theirs:.2f}", "1.00x"],
        ["cs336_basics, empty cache", f"{cold:.2f}", f"{size_mb / cold:.2f}", f"{theirs / cold:.2f}x"],
        ["cs336_basics, warm cache", f"{warm:.2f}", f"{size_mb / warm:.2f}", f"{theirs / warm:.2f}x"],
    ]
    print(markdown_table(["encoder (1 thread)", "seconds", "MB/s", "vs tiktoken"], rows, align="lrrr"))


if __name__ == "__main__":
    main(parse_config(BenchEncodeConfig, description=__doc__))
