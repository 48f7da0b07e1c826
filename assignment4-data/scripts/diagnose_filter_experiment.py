"""Why the first filter-versus-raw run came out as it did, from the crawl's labels, the pipelines' decision logs and
outputs, and the token files (WRITEUP.md, "First run").

    uv run python assignment4-data/scripts/diagnose_filter_experiment.py \\
        --out_dir assignment4-data/results/filter_vs_raw                          # ~10 s on 2 cores

Needs the crawl and ``prepare_filter_experiment.py``'s output (CPU only). Writes ``diagnostics.json`` and
``diagnostics.md``: each corpus's make-up by page kind, which filter removes what, the characters of each kind a
model reads at the budget, the held-out articles' overlap with the quality classifier's positives, and a Witten-Bell
bigram cross-check (see ``cs336_data.filter_experiment.diagnostics``).
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_data.filter_experiment.diagnostics import DiagnoseConfig, diagnose_filter_experiment


def main() -> None:
    written = diagnose_filter_experiment(parse_config(DiagnoseConfig, description=__doc__))
    print(f"wrote {', '.join(str(path) for path in written)}")


if __name__ == "__main__":
    main()
