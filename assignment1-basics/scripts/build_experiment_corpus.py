"""Build the offline English corpus of the assignment-1 experiments (BPE 10k, ~26 M training tokens).

    uv run python assignment3-scaling/scripts/debian_text.py --debs runs/corpus/debs --out_dir runs/corpus/english_text
    uv run python assignment1-basics/scripts/build_experiment_corpus.py --out_dir runs/experiment_corpus \\
        --sources runs/corpus/english_text ../shared/fixtures/assignment1/tinystories_sample_5M.txt

Writes vocab.json, merges.txt, train.bin, valid.bin (uint16) and corpus.json (sources, counts, SHA-256).
"""

from __future__ import annotations

import json

from cs336_basics.experiment_corpus import ExperimentCorpusConfig, build_experiment_corpus
from cs336_basics.toolkit.cli import parse_config

if __name__ == "__main__":
    summary = build_experiment_corpus(parse_config(ExperimentCorpusConfig))
    print(json.dumps({k: summary[k] for k in ("tokens", "characters", "documents", "seconds")}, indent=2))
