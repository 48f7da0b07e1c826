"""Download of Dolma's Jigsaw fastText classifiers (NSFW and hate speech), the models the course uses.

They are large (hundreds of MB each) and live outside PyPI, so they are an explicit step (``make assets``) rather
than a dependency; without them :mod:`cs336_data.harmful` falls back to its offline default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.data_paths import DownloadError, download_file

from cs336_data.harmful import DOLMA_BASE_URL, NSFW, TOXIC, HarmKind, classifier_dir


class AssetDownloadError(RuntimeError):
    """A model file could not be fetched (offline, blocked, or the server moved it)."""


@dataclass(frozen=True)
class DolmaDownloadConfig:
    """Download Dolma's Jigsaw NSFW and hate-speech fastText models (network needed)."""

    out_dir: Path | None = field(
        default=None, metadata={"help": "target folder (none: the cs336 cache's classifiers/)"}
    )
    base_url: str = field(default=DOLMA_BASE_URL, metadata={"help": "where the model files are served"})
    timeout: float = field(default=30.0, metadata={"help": "seconds without data before giving up"})

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")


def download_dolma_model(
    kind: HarmKind, dest_dir: str | os.PathLike | None = None, base_url: str = DOLMA_BASE_URL, timeout: float = 30.0
) -> Path:
    """Fetch one model into ``dest_dir`` (default: the classifier cache); an existing file is kept as it is."""
    dest = Path(dest_dir) if dest_dir is not None else classifier_dir()
    path = dest / kind.dolma_file
    if path.is_file() and path.stat().st_size > 0:
        return path
    path.unlink(missing_ok=True)  # an empty leftover is not a model
    url = base_url + kind.dolma_file
    try:
        return download_file(url, path, progress=False, timeout=timeout)
    except (DownloadError, OSError) as err:
        raise AssetDownloadError(
            f"could not download the Dolma {kind.name} model from {url}: {err}. Without network access, copy "
            f"{kind.dolma_file} to {path} (or point ${kind.env_var} at it); until then the offline default "
            "classifier is used."
        ) from err


def download_dolma_models(
    dest_dir: str | os.PathLike | None = None, base_url: str = DOLMA_BASE_URL, timeout: float = 30.0
) -> list[Path]:
    return [download_dolma_model(kind, dest_dir, base_url, timeout) for kind in (NSFW, TOXIC)]
