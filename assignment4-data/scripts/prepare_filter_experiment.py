"""Token files for the filter-versus-raw experiment: the raw crawl's text, its filtered outputs, clean held-out text.

    uv run python assignment4-data/scripts/prepare_filter_experiment.py          # ~15 min on 2 cores, cached

Builds the sample crawl, runs the pipeline on it with and without the quality classifier, writes the corpora and a
byte-level BPE (trained on the raw text) and tokenises them (see ``cs336_data.filter_experiment.prepare``). The GPU
run needs only ``<out_dir>/data`` (``scripts/filter_vs_raw.py``).
"""

from __future__ import annotations

import json

from cs336_basics.toolkit.cli import parse_config
from cs336_data.filter_experiment.prepare import PrepareConfig, prepare_filter_experiment


def main() -> None:
    config = parse_config(PrepareConfig, description=__doc__)
    print(json.dumps(prepare_filter_experiment(config), indent=1))
    data_dir = config.out_dir / "data"
    total = sum(p.stat().st_size for p in data_dir.iterdir())
    print(f"{data_dir}: {total / 2**20:.1f} MiB (carry this folder to the GPU machine)")


if __name__ == "__main__":
    main()
