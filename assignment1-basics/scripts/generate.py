"""Sample text from a trained checkpoint (written by scripts/train.py or the demo).

    uv run python assignment1-basics/scripts/generate.py --checkpoint runs/demo/checkpoint.pt \\
        --vocab runs/demo/vocab.json --merges runs/demo/merges.txt --prompt "The city of" --temperature 0.8 --top_p 0.9
"""

from __future__ import annotations

from cs336_basics.generate_config import GenerateConfig
from cs336_basics.toolkit.cli import parse_config


def main(cfg: GenerateConfig) -> list[str]:
    from cs336_basics.sample_checkpoint import sample_checkpoint  # torch loads here, so that --help answers at once

    return sample_checkpoint(cfg)


if __name__ == "__main__":
    main(parse_config(GenerateConfig))
