"""Download the course's training data: TinyStories and the OpenWebText sample (URLs from the course handout).

The files go through :func:`cs336_basics.toolkit.data_paths.download_file`: resumable, atomic, skipped when
already there; without network the error says which URL failed and why.
"""

from __future__ import annotations

import os
from pathlib import Path

from cs336_basics.toolkit.data_paths import download_file

_HF = "https://huggingface.co/datasets"
DATASETS: dict[str, dict[str, str]] = {
    "tinystories": {
        "TinyStoriesV2-GPT4-train.txt": f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        "TinyStoriesV2-GPT4-valid.txt": f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
    },
    "owt": {
        "owt_train.txt": f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz",
        "owt_valid.txt": f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz",
    },
}


def download_datasets(out_dir: str | os.PathLike, names: list[str], progress: bool = True) -> list[Path]:
    """Download every file of the named datasets (``tinystories``, ``owt``) into ``out_dir``."""
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}")
    return [
        download_file(url, Path(out_dir) / filename, progress)
        for name in names
        for filename, url in DATASETS[name].items()
    ]
