"""BPE training time: ``cs336_basics.bpe.train_bpe`` against Hugging Face ``tokenizers`` (ByteLevel BPE, Rust).

Same text (>= 10 MB of real English, see ``english_text.py``), same vocabulary size, same special token, same
machine, one run. Both use every core: ours pre-tokenises in a process pool, ``tokenizers`` with Rayon threads.

    uv run python assignment1-basics/benchmarks/bench_bpe_training.py [--vocab_size 10000] [--text FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from cs336_basics.bpe import train_bpe
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.tables import markdown_table
from english_text import build_english_text

EOT = "<|endoftext|>"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab_size", type=int, default=10_000)
    parser.add_argument("--text", type=Path, default=None, help="UTF-8 text to train on (default: built, >= 10 MB)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for the text and results")
    args = parser.parse_args()
    sources = [str(args.text)]
    path = args.text or None
    if path is None:
        path, sources = build_english_text(args.out / "english.txt")
    size_mb = path.stat().st_size / 1e6
    ours, ours_vocab = time_ours(path, args.vocab_size)
    theirs, their_vocab = time_huggingface(path, args.vocab_size)
    result = {
        "text_mb": round(size_mb, 2),
        "sources": sources,
        "vocab_size": args.vocab_size,
        "cpus": os.cpu_count(),
        "cs336_basics_seconds": round(ours, 2),
        "hf_tokenizers_seconds": round(theirs, 2),
        "ratio_ours_over_hf": round(ours / theirs, 3),
        "vocab_sizes": [ours_vocab, their_vocab],
    }
    write_json_atomic(args.out / "bench_bpe_training.json", result)
    print(f"text: {size_mb:.1f} MB ({'; '.join(sources)}), vocab {args.vocab_size}, {os.cpu_count()} CPUs\n")
    rows = [
        ["cs336_basics.bpe.train_bpe", f"{ours:.2f}", f"{size_mb / ours:.2f}", f"{ours / theirs:.2f}x time"],
        ["HF tokenizers ByteLevel BPE", f"{theirs:.2f}", f"{size_mb / theirs:.2f}", "1.00x"],
    ]
    print(markdown_table(["trainer", "seconds", "MB/s", "vs HF tokenizers"], rows, align="lrrr"))


if __name__ == "__main__":
    main()
