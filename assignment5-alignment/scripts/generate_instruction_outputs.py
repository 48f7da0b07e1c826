"""Generate outputs for AlpacaEval or SimpleSafetyTests, in the files their judges read.

uv run python assignment5-alignment/scripts/generate_instruction_outputs.py --benchmark alpaca_eval --limit 20
Then (online, with an API key): alpaca_eval --model_outputs runs/instruction_outputs/alpaca_eval.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.instruction_eval import (
    alpaca_eval_records,
    instruction_prompt,
    load_alpaca_eval,
    load_simple_safety_tests,
    safety_records,
)
from cs336_alignment.run_setup import PolicyConfig, load_policy, policy_sampler
from cs336_alignment.sampling import SamplingParams
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config


@dataclass
class InstructionOutputsConfig:
    """Greedy outputs for AlpacaEval or SimpleSafetyTests, in the JSON their judges read."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    benchmark: str = field(default="alpaca_eval", metadata={"help": "alpaca_eval or simple_safety_tests"})
    limit: int = field(default=0, metadata={"help": "first N instructions (0: all)"})
    max_tokens: int = field(default=512, metadata={"help": "response length cap (tokens)"})
    generator: str = field(default="", metadata={"help": "name recorded with the outputs (default: the model)"})
    out_dir: str = field(default="runs/instruction_outputs", metadata={"help": "folder for <benchmark>.json"})


def main() -> None:
    cfg = parse_config(InstructionOutputsConfig)
    if cfg.benchmark == "alpaca_eval":
        examples = load_alpaca_eval()
        instructions = [e["instruction"] for e in examples]
    elif cfg.benchmark == "simple_safety_tests":
        examples = load_simple_safety_tests()
        instructions = [e["prompts_final"] for e in examples]
    else:
        raise SystemExit(f"--benchmark must be alpaca_eval or simple_safety_tests, got {cfg.benchmark!r}")
    if cfg.limit:
        examples, instructions = examples[: cfg.limit], instructions[: cfg.limit]
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    params = SamplingParams(
        temperature=0.0, max_tokens=cfg.max_tokens, stop=("# Query:",), include_stop_str_in_output=False
    )
    outputs = [c.text.strip() for c in sampler.generate([instruction_prompt(i) for i in instructions], params)]
    generator = cfg.generator or cfg.policy.model
    records = (alpaca_eval_records if cfg.benchmark == "alpaca_eval" else safety_records)(examples, outputs, generator)
    path = write_json_atomic(Path(cfg.out_dir) / f"{cfg.benchmark}.json", records)
    print(f"{len(records)} outputs written to {path}")


if __name__ == "__main__":
    main()
