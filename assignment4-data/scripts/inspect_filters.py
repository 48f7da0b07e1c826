"""What each filter did on the sample crawl, against the pages' true labels, with examples to read.

    uv run python assignment4-data/scripts/inspect_filters.py --crawl assignment4-data/runs/crawl \\
        --pipeline assignment4-data/runs/filter_vs_raw/pipeline_filtered --out_dir assignment4-data/results/pipeline

Needs a pipeline run with ``--log_decisions`` on the crawl's WARC shards. Writes the pipeline's counts
(``stats.{md,json,png}``), each step's verdicts per kind of page (``by_kind.md``), kept and dropped examples
(``samples.md``) and every classifier's verdict on 25 random pages (``random_pages.md``); see
``cs336_data.filter_inspection``.
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_data.filter_inspection import InspectFiltersConfig, inspect_filters


def main() -> None:
    written = inspect_filters(parse_config(InspectFiltersConfig, description=__doc__))
    print(f"wrote {', '.join(str(path) for path in written)}")


if __name__ == "__main__":
    main()
