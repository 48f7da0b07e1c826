"""Train a Transformer LM on uint16 token files (every TrainConfig / ModelConfig field is a flag).

    uv run python assignment1-basics/scripts/train.py --train_data data/ts_train.bin --valid_data data/ts_valid.bin \\
        --vocab runs/tok_ts/vocab.json --out_dir runs/tinystories --batch_size 128 --max_iters 5000 --compile --wandb

The model's vocabulary is the tokenizer's size (``--vocab``), or ``--model.vocab_size``, or else the largest token
id of the data + 1 (with a warning). Writes ``checkpoint.pt``, ``metrics.jsonl`` and ``loss_curve.png`` under
``--out_dir``; ``--resume`` continues from the checkpoint there (same batches as an uninterrupted run).
"""

from __future__ import annotations

import json

from cs336_basics.toolkit.cli import parse_config
from cs336_basics.train_config import TrainConfig


def main(cfg: TrainConfig) -> dict:
    from cs336_basics.train import train  # torch loads here, not at the top, so that --help answers at once

    summary = train(cfg)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(parse_config(TrainConfig))
