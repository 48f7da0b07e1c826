"""Tokenise text files into flat uint16 token files (``.bin``) for training, in parallel.

    uv run python assignment1-basics/scripts/tokenize_dataset.py --vocab runs/tokenizer/vocab.json \\
        --merges runs/tokenizer/merges.txt --input data/TinyStoriesV2-GPT4-valid.txt --output data/ts_valid.bin
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.cli import parse_config


@dataclass
class TokenizeConfig:
    """Encode a UTF-8 text file with a trained BPE tokenizer into a little-endian uint16 token file."""

    input: str = field(metadata={"help": "UTF-8 text file"})
    output: str = field(metadata={"help": "token file to write (.bin)"})
    vocab: str = field(metadata={"help": "vocab.json (GPT-2 format)"})
    merges: str = field(metadata={"help": "merges.txt (GPT-2 format)"})
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    num_workers: int | None = field(default=None, metadata={"help": "encoding processes (default: CPUs)"})
    progress: bool = True


def main(cfg: TokenizeConfig) -> int:
    tokenizer = Tokenizer.from_files(cfg.vocab, cfg.merges, cfg.special_tokens)
    started = time.perf_counter()
    count = tokenize_to_memmap(cfg.input, tokenizer, cfg.output, num_workers=cfg.num_workers, progress=cfg.progress)
    seconds = time.perf_counter() - started
    size = Path(cfg.input).stat().st_size
    print(
        f"{cfg.input}: {count:,} tokens ({size / max(count, 1):.2f} bytes/token) in {seconds:.1f}s "
        f"({size / 1e6 / seconds:.1f} MB/s) -> {cfg.output}"
    )
    return count


if __name__ == "__main__":
    main(parse_config(TokenizeConfig))
