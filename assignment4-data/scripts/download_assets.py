"""Download Dolma's Jigsaw NSFW and hate-speech fastText models into the cache (``make assets``; network needed).

    uv run python assignment4-data/scripts/download_assets.py [--dest DIR]

Afterwards ``classify_nsfw`` / ``classify_toxic_speech`` use them instead of the offline default. A file stored
elsewhere is picked up through ``$CS336_NSFW_MODEL`` / ``$CS336_TOXIC_MODEL``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cs336_data.dolma_models import AssetDownloadError, download_dolma_models
from cs336_data.harmful import DOLMA_BASE_URL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, help="target folder (default: the cs336 cache's classifiers/)")
    parser.add_argument("--base-url", default=DOLMA_BASE_URL)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds without data before giving up")
    args = parser.parse_args()
    try:
        paths = download_dolma_models(args.dest, args.base_url, args.timeout)
    except AssetDownloadError as err:
        raise SystemExit(f"error: {err}") from err
    for path in paths:
        print(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
