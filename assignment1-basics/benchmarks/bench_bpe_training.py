"""BPE training time: ``cs336_basics.bpe.train_bpe`` against Hugging Face ``tokenizers`` (ByteLevel BPE, Rust).

Same text (>= 10 MB of real English, see ``english_text.py``), same vocabulary size, same special token, same
machine, one run. Both use every core: ours pre-tokenises in a process pool, ``tokenizers`` with Rayon threads.

    uv run python assignment1-basics/benchmarks/bench_bpe_training.py [--vocab_size 10000] [--text FILE] [--out_dir DIR]
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.bpe import train_bpe
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import markdown_table
from english_text import build_english_text

EOT = "<|endoftext|>"


@dataclass(frozen=True)
class BenchBPETrainingConfig:
    """BPE training time of ``train_bpe`` against Hugging Face ``tokenizers`` on the same text and vocabulary."""

    vocab_size: int = field(default=10_000, metadata={"help": "vocabulary size, special token included"})
    text: Path | None = field(default=None, metadata={"help": "UTF-8 text to train on (none: built, >= 10 MB)"})
    out_dir: Path = field(
        default=Path("runs/bench"), metadata={"help": "folder for english.txt (when built) and bench_bpe_training.json"}
    )

    def __post_init__(self):
        if self.vocab_size < 257:
            raise ValueError(
                f"vocab_size must be at least 257 (256 bytes and the special token), got {self.vocab_size}"
            )


def time_ours(path: Path, vocab_size: int) -> tuple[float, int]:
    started = time.perf_counter()
    vocab, _ = train_bpe(path, vocab_size, [EOT])
    return time.perf_counter() - started, len(vocab)


def time_huggingface(path: Path, vocab_size: int) -> tuple[float, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    started = time.perf_counter()
    tokenizer.train([str(path)], trainer)
    return time.perf_counter() - started, tokenizer.get_vocab_size()


def main(config: BenchBPETrainingConfig) -> None:
    path, sources = (
        (config.text, [str(config.text)]) if config.text else build_english_text(config.out_dir / "english.txt")
    )
    size_mb = path.stat().st_size / 1e6
    ours, ours_vocab = time_ours(path, config.vocab_size)
    theirs, their_vocab = time_huggingface(path, config.vocab_size)
    result = {
        "text_mb": round(size_mb, 2),
        "sources": sources,
        "vocab_size": config.vocab_size,
        "cpus": os.cpu_count(),
        "cs336_basics_seconds": round(ours, 2),
        "hf_tokenizers_seconds": round(theirs, 2),
        "ratio_ours_over_hf": round(ours / theirs, 3),
        "vocab_sizes": [ours_vocab, their_vocab],
    }
    write_json_atomic(config.out_dir / "bench_bpe_training.json", result)
    print(f"text: {size_mb:.1f} MB ({'; '.join(sources)}), vocab {config.vocab_size}, {os.cpu_count()} CPUs\n")
    rows = [
        ["cs336_basics.bpe.train_bpe", f"{ours:.2f}", f"{size_mb / ours:.2f}", f"{ours / theirs:.2f}x time"],
        ["HF tokenizers ByteLevel BPE", f"{theirs:.2f}", f"{size_mb / theirs:.2f}", "1.00x"],
    ]
    print(markdown_table(["trainer", "seconds", "MB/s", "vs HF tokenizers"], rows, align="lrrr"))


if __name__ == "__main__":
    main(parse_config(BenchBPETrainingConfig, description=__doc__))
