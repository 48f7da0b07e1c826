"""Zero-shot math accuracy with the r1_zero prompt and reward: GSM8K, procedural problems, or MATH-style JSONL.

uv run python assignment5-alignment/scripts/evaluate_math.py --dataset gsm8k --limit 100 --max_tokens 256
Online: ... --model Qwen/Qwen2.5-Math-1.5B --dtype bfloat16 --device cuda --backend vllm --dataset math.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.math_eval import evaluate_math, r1_zero_sampling
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_setup import PolicyConfig, load_policy, load_problems, policy_sampler
from cs336_basics.toolkit.atomic import write_json_atomic, write_jsonl_atomic
from cs336_basics.toolkit.cli import parse_config


@dataclass
class MathEvalConfig:
    """Zero-shot accuracy of a policy with the r1_zero prompt and reward."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    dataset: str = field(default="gsm8k", metadata={"help": "gsm8k, arithmetic or a MATH-style JSONL path"})
    split: str = field(default="test", metadata={"help": "train or test (GSM8K; ignored for a JSONL)"})
    limit: int = field(default=0, metadata={"help": "first N problems (0: all)"})
    max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    slow_grader: bool = field(default=False, metadata={"help": "also try math-verify on answers judged wrong"})
    out: str = field(default="runs/eval_math", metadata={"help": "folder for metrics.json and generations.jsonl"})


def main() -> None:
    cfg = parse_config(MathEvalConfig)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    problems = load_problems(cfg.dataset, cfg.split, cfg.limit)

    def reward(response: str, truth: str) -> dict[str, float]:
        return r1_zero_reward_fn(response, truth, fast=not cfg.slow_grader)

    result = evaluate_math(sampler, problems, r1_zero_sampling(cfg.max_tokens), reward)
    out = Path(cfg.out)
    write_jsonl_atomic(out / "generations.jsonl", result.records)
    write_json_atomic(out / "metrics.json", {"model": cfg.policy.model, "dataset": cfg.dataset, **result.metrics})
    print(json.dumps(result.metrics, indent=2))


if __name__ == "__main__":
    main()
