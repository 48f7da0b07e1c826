"""Download TinyStories and the OpenWebText sample (what `make data` runs); resumable, skips finished files.

uv run python assignment1-basics/scripts/download_data.py --out_dir data [--datasets tinystories owt]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from cs336_basics.download import download_datasets
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.data_paths import DownloadError


@dataclass
class DownloadConfig:
    """Download the course's training text files."""

    out_dir: str = field(default="data", metadata={"help": "folder to write the text files into"})
    datasets: list[str] = field(default_factory=lambda: ["tinystories", "owt"])
    progress: bool = True


def main(cfg: DownloadConfig) -> None:
    try:
        paths = download_datasets(cfg.out_dir, cfg.datasets, cfg.progress)
    except DownloadError as err:
        sys.exit(f"error: {err}")
    for path in paths:
        print(f"{path}: {path.stat().st_size / 1e6:,.1f} MB")


if __name__ == "__main__":
    main(parse_config(DownloadConfig))
