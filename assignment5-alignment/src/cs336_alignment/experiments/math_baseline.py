"""Zero-shot accuracy on the fixed GSM8K test subset with the r1_zero and question_only prompts, greedy and at the
handout's temperature 1.0 (top-p 1.0), with 95% Wilson intervals, the format-vs-answer breakdown and failure
examples: what ``scripts/experiments/math_baseline.py`` runs."""

from __future__ import annotations

import time
from typing import Any

from cs336_basics.toolkit.atomic import write_jsonl_atomic

from cs336_alignment.experiments.configs import MathBaselineConfig
from cs336_alignment.math_eval import OUTCOMES, accuracy_estimates, failure_examples, summarize_evaluation
from cs336_alignment.plots import plot_estimates
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.subset_eval import SubsetEvaluation

COLUMNS = {
    "prompt": "prompt",
    "temperature": "temperature (0: greedy)",
    "reward": "reward (95% CI)",
    "format_reward": "format reward (95% CI)",
    "answer_reward": "answer reward (95% CI)",
    **{name: name.replace("_", " ") for name in OUTCOMES},
    "truncated": "cut at max tokens",
    "response_tokens": "mean tokens",
    "tokens_per_second": "tokens/s",
}


def failures_markdown(label: str, records: list[dict], per_outcome: int) -> str:
    """A markdown section with up to ``per_outcome`` failed responses of each failure outcome."""
    lines = [f"\n### Failures: {label}\n"]
    for outcome, examples in failure_examples(records, per_outcome).items():
        lines.append(f"**{outcome.replace('_', ' ')}**\n")
        for r in examples:
            response = r["response"] if len(r["response"]) < 700 else r["response"][:700] + " [...]"
            lines.append(f"- test #{r['test_index']}, truth `{r['ground_truth']}`: `{response!r}`")
        lines.append("")
    return "\n".join(lines)


def run_math_baseline(cfg: MathBaselineConfig) -> list[dict[str, Any]]:
    """Evaluate each prompt style at each temperature (seeded, so a rerun draws the same samples); write
    ``math_baseline.{md,json,png}``, ``metrics.jsonl`` and ``generations.jsonl`` to ``out_dir``; return the
    table's rows."""
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    summaries, rows, generations, estimates, notes = [], [], [], {}, ""
    for name in cfg.prompts:
        subset = SubsetEvaluation.gsm8k(sampler, cfg.subset_size, cfg.subset_seed, 1, cfg.max_tokens, name)
        for temperature in cfg.temperatures:
            label = f"{name} T={temperature:g}"
            started = time.perf_counter()
            result = subset.run(temperature=temperature, seed=cfg.seed)
            seconds = time.perf_counter() - started
            tokens = sum(r["response_tokens"] for r in result.records)
            summary = {"prompt": name, "temperature": temperature, **summarize_evaluation(result.records)}
            summary |= {"seconds": seconds, "tokens_per_second": tokens / seconds}
            estimates[label] = accuracy_estimates(result.records)
            summaries.append(summary)
            rows.append(summary | {key: str(e) for key, e in estimates[label].items()})
            generations += [{"prompt_style": name, "temperature": temperature, **r} for r in result.records]
            notes += failures_markdown(label, result.records, cfg.failures_per_outcome)
    temperatures = ", ".join(f"{t:g}" for t in cfg.temperatures)
    title = (
        f"Zero-shot GSM8K accuracy of {cfg.policy.model} "
        f"({cfg.subset_size} test problems, temperature {temperatures}, top-p 1)"
    )
    details = {"summaries": summaries, "max_tokens": cfg.max_tokens, "seed": cfg.seed, "subset": subset.indices}
    write_report(cfg.out_dir, "math_baseline", title, rows, COLUMNS, details, notes)
    write_jsonl_atomic(f"{cfg.out_dir}/metrics.jsonl", [{"step": 0, **s} for s in summaries])
    write_jsonl_atomic(f"{cfg.out_dir}/generations.jsonl", generations)
    plot_estimates(estimates, f"{cfg.out_dir}/math_baseline.png", title, "mean reward (95% Wilson interval)")
    for row in rows:
        label = f"{row['prompt']} T={row['temperature']:g}"
        print(f"{label:>20}: reward {row['reward']}  format {row['format_reward']}")
    print(f"table: {cfg.out_dir}/math_baseline.md  plot: {cfg.out_dir}/math_baseline.png")
    return rows
