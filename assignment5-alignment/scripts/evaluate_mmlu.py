"""Zero-shot MMLU accuracy with the supplement's system prompt and answer parser.

uv run python assignment5-alignment/scripts/evaluate_mmlu.py --split test --limit 200 --max_tokens 32
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.mmlu import load_mmlu, mmlu_prompt, score_mmlu
from cs336_alignment.run_setup import PolicyConfig, load_policy, policy_sampler
from cs336_alignment.sampling import SamplingParams
from cs336_basics.toolkit.atomic import write_json_atomic, write_jsonl_atomic
from cs336_basics.toolkit.cli import parse_config


@dataclass
class MMLUEvalConfig:
    """Zero-shot MMLU accuracy with the supplement's system prompt and answer parser."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    split: str = field(default="test", metadata={"help": "MMLU split: dev, val or test"})
    limit: int = field(default=0, metadata={"help": "first N questions (0: all 14k)"})
    max_tokens: int = field(default=64, metadata={"help": "response length cap (tokens)"})
    out: str = field(default="runs/eval_mmlu", metadata={"help": "folder for metrics.json and generations.jsonl"})


def main() -> None:
    cfg = parse_config(MMLUEvalConfig)
    examples = load_mmlu(cfg.split)
    examples = examples[: cfg.limit] if cfg.limit else examples
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=cfg.max_tokens, stop=("# Query:",))
    outputs = [c.text for c in sampler.generate([mmlu_prompt(e) for e in examples], params)]
    metrics, records = score_mmlu(examples, outputs)
    out = Path(cfg.out)
    write_jsonl_atomic(out / "generations.jsonl", records)
    write_json_atomic(out / "metrics.json", {"model": cfg.policy.model, "split": cfg.split, **metrics})
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
