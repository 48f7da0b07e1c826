"""Download Dolma's Jigsaw NSFW and hate-speech fastText models into the cache (``make assets``; network needed).

    uv run python assignment4-data/scripts/download_assets.py [--out_dir DIR]

Afterwards ``classify_nsfw`` / ``classify_toxic_speech`` use them instead of the offline default. A file stored
elsewhere is picked up through ``$CS336_NSFW_MODEL`` / ``$CS336_TOXIC_MODEL``.
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_data.dolma_models import AssetDownloadError, DolmaDownloadConfig, download_dolma_models


def main() -> None:
    config = parse_config(DolmaDownloadConfig, description=__doc__)
    try:
        paths = download_dolma_models(config.out_dir, config.base_url, config.timeout)
    except AssetDownloadError as err:
        raise SystemExit(f"error: {err}") from err
    for path in paths:
        print(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
