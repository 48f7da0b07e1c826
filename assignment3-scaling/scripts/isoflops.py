"""Chinchilla IsoFLOPs analysis of the course's ``isoflops_curves.json``: table of predictions and the plots.

uv run python assignment3-scaling/scripts/isoflops.py --out_dir assignment3-scaling/results/isoflops
"""

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.isoflops_report import IsoFlopsConfig, run_isoflops


def main() -> None:
    run_isoflops(parse_config(IsoFlopsConfig, description=__doc__))


if __name__ == "__main__":
    main()
