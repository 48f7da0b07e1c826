"""Measure the handout's tokenizer problems offline: BPE training time, memory and profile, longest tokens,
compression (own and cross corpus), throughput and uint16 token files. Run from the repository root:

    uv run python assignment1-basics/scripts/tokenizer_experiments.py
    uv run python assignment1-basics/scripts/tokenizer_experiments.py --docs_dir runs/corpus/english_text \\
        --tinystories_vocab_size 10000 --docs_vocab_size 32000 --sample_documents 10

Writes results.json and table.md to --out_dir; vocab/merges, training texts and token files go to --work_dir.
"""

from __future__ import annotations

from cs336_basics.tokenizer_experiments import TokenizerExperimentsConfig, results_table, run_tokenizer_experiments
from cs336_basics.toolkit.cli import parse_config

if __name__ == "__main__":
    print(results_table(run_tokenizer_experiments(parse_config(TokenizerExperimentsConfig))))
