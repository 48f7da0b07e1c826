"""Zero-shot MMLU accuracy with the supplement's system prompt and answer parser: what
``scripts/evaluate_mmlu.py`` runs."""

from __future__ import annotations

import json
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic, write_jsonl_atomic

from cs336_alignment.evaluation.configs import MMLUEvalConfig
from cs336_alignment.mmlu import load_mmlu, mmlu_prompt, score_mmlu
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.sampling import SamplingParams


def evaluate_mmlu_accuracy(cfg: MMLUEvalConfig) -> dict[str, float]:
    """Write ``generations.jsonl`` and ``metrics.json`` to ``cfg.out_dir``, print and return the metrics."""
    examples = load_mmlu(cfg.split)
    examples = examples[: cfg.limit] if cfg.limit else examples
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=cfg.max_tokens, stop=("# Query:",))
    outputs = [c.text for c in sampler.generate([mmlu_prompt(e) for e in examples], params)]
    metrics, records = score_mmlu(examples, outputs)
    out = Path(cfg.out_dir)
    write_jsonl_atomic(out / "generations.jsonl", records)
    write_json_atomic(out / "metrics.json", {"model": cfg.policy.model, "split": cfg.split, **metrics})
    print(json.dumps(metrics, indent=2))
    return metrics
