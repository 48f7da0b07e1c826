"""Generate outputs for AlpacaEval or SimpleSafetyTests, in the files their judges read.

uv run python assignment5-alignment/scripts/generate_instruction_outputs.py --benchmark alpaca_eval --limit 20
Then (online, with an API key): alpaca_eval --model_outputs runs/instruction_outputs/alpaca_eval.json
"""

from __future__ import annotations

from cs336_alignment.evaluation.configs import InstructionOutputsConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(InstructionOutputsConfig)
    from cs336_alignment.evaluation.instruction_outputs import generate_instruction_outputs  # torch: after --help

    generate_instruction_outputs(cfg)


if __name__ == "__main__":
    main()
