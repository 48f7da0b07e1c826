"""Does filtering help? Train the assignment-1 model on each corpus for the same tokens, score on clean held-out text.

    PYTHONPATH=assignment1-basics/src:assignment4-data/src python3 assignment4-data/scripts/filter_vs_raw.py \\
        --data assignment4-data/runs/filter_vs_raw/data --out_dir results/filter_vs_raw      # one H200, ~5 min

Reads ``<data>/meta.json`` and the uint16 token files that ``prepare_filter_experiment.py`` writes; by default one
epoch of ``filtered_no_quality`` (no arm repeats much) and one epoch of ``raw`` (the small filtered corpora are
repeated), two seeds. Writes ``results.md`` and ``results.json`` (per run; per budget and arm, mean and spread over
seeds), ``loss_curves_<budget>.png`` and ``metrics.jsonl`` (see ``cs336_data.filter_experiment.training``). Needs only
torch, numpy, matplotlib and tqdm (and ``cs336_basics`` and ``cs336_data`` on the path).
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_data.filter_experiment.training import FilterVsRawConfig, run_filter_vs_raw


def main() -> None:
    print(run_filter_vs_raw(parse_config(FilterVsRawConfig, description=__doc__)))


if __name__ == "__main__":
    main()
