"""Zero-shot math accuracy with the r1_zero prompt and reward on GSM8K, procedural problems or MATH-style JSONL:
what ``scripts/evaluate_math.py`` runs."""

from __future__ import annotations

import json
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic, write_jsonl_atomic

from cs336_alignment.evaluation.configs import MathEvalConfig
from cs336_alignment.math_eval import evaluate_math, r1_zero_sampling
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_setup import load_policy, load_problems, policy_sampler


def evaluate_math_accuracy(cfg: MathEvalConfig) -> dict[str, float]:
    """Write ``generations.jsonl`` and ``metrics.json`` to ``cfg.out_dir``, print and return the metrics."""
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    problems = load_problems(cfg.dataset, cfg.split, cfg.limit)

    def reward(response: str, truth: str) -> dict[str, float]:
        return r1_zero_reward_fn(response, truth, fast=not cfg.slow_grader)

    result = evaluate_math(sampler, problems, r1_zero_sampling(cfg.max_tokens), reward)
    out = Path(cfg.out_dir)
    write_jsonl_atomic(out / "generations.jsonl", result.records)
    write_json_atomic(out / "metrics.json", {"model": cfg.policy.model, "dataset": cfg.dataset, **result.metrics})
    print(json.dumps(result.metrics, indent=2))
    return result.metrics
