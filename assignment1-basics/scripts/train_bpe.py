"""Train a byte-level BPE tokenizer on a text file and save GPT-2-format vocab.json / merges.txt.

    uv run python assignment1-basics/scripts/train_bpe.py --input data/TinyStoriesV2-GPT4-train.txt \\
        --vocab_size 10000 --out_dir runs/tokenizers/tinystories
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.bpe import save_vocab_merges, train_bpe
from cs336_basics.gpt2_bytes import encode_token
from cs336_basics.toolkit.cli import parse_config


@dataclass
class TrainBPEConfig:
    """Train a byte-level BPE tokenizer (GPT-2 pre-tokenisation) on a UTF-8 text file."""

    input: str = field(metadata={"help": "UTF-8 text file to train on"})
    vocab_size: int = field(default=10_000, metadata={"help": "256 bytes + special tokens + merges"})
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    out_dir: str = field(default="runs/tokenizer", metadata={"help": "writes vocab.json, merges.txt, stats.json"})
    num_workers: int | None = field(default=None, metadata={"help": "pre-tokenisation processes (default: CPUs)"})
    progress: bool = True


def main(cfg: TrainBPEConfig) -> dict:
    started = time.perf_counter()
    vocab, merges = train_bpe(
        cfg.input, cfg.vocab_size, cfg.special_tokens, num_workers=cfg.num_workers, progress=cfg.progress
    )
    seconds = time.perf_counter() - started
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_vocab_merges(vocab, merges, out_dir / "vocab.json", out_dir / "merges.txt")
    longest = max((left + right for left, right in merges), key=len, default=b"")
    stats = {
        "input": cfg.input,
        "input_bytes": Path(cfg.input).stat().st_size,
        "vocab_size": len(vocab),
        "merges": len(merges),
        "seconds": round(seconds, 3),
        "longest_token": encode_token(longest),
        "longest_token_bytes": len(longest),
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    print(
        f"trained {len(vocab)} tokens ({len(merges)} merges) on {stats['input_bytes'] / 1e6:.1f} MB in {seconds:.2f}s;"
        f" longest token: {longest.decode('utf-8', errors='replace')!r} ({len(longest)} bytes)"
    )
    print(f"wrote {out_dir / 'vocab.json'} and {out_dir / 'merges.txt'}")
    return stats


if __name__ == "__main__":
    main(parse_config(TrainBPEConfig))
