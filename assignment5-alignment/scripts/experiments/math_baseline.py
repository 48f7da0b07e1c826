"""math_baseline: zero-shot accuracy on the fixed GSM8K test subset with the r1_zero and question_only prompts,
with 95% Wilson intervals, the format-vs-answer breakdown and failure examples.

GPU (one call, after the weights are carried: README "GPU experiments"):
    bash assignment5-alignment/scripts/gpu_run.sh math_baseline --out_dir $OUT
CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/math_baseline.py --subset_size 4 --max_tokens 16 \
        --out_dir runs/math_baseline_smoke
Writes math_baseline.md/.json (table, breakdown, failures), math_baseline.png, metrics.jsonl, generations.jsonl.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cs336_alignment.math_eval import OUTCOMES, accuracy_estimates, failure_examples, summarize_evaluation
from cs336_alignment.plots import plot_estimates
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import PolicyConfig, load_policy, policy_sampler
from cs336_alignment.subset_eval import SubsetEvaluation
from cs336_basics.toolkit.atomic import write_jsonl_atomic
from cs336_basics.toolkit.cli import parse_config

COLUMNS = {
    "prompt": "prompt",
    "reward": "reward (95% CI)",
    "format_reward": "format reward (95% CI)",
    "answer_reward": "answer reward (95% CI)",
    **{name: name.replace("_", " ") for name in OUTCOMES},
    "truncated": "cut at max tokens",
    "response_tokens": "mean tokens",
    "tokens_per_second": "tokens/s",
}


@dataclass
class MathBaselineConfig:
    """Zero-shot accuracy on a fixed GSM8K test subset with each prompt (greedy decoding)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    out_dir: str = field(default="runs/math_baseline", metadata={"help": "folder for the table, plot and JSONL"})
    prompts: list[str] = field(
        default_factory=lambda: ["r1_zero", "question_only"], metadata={"help": "prompt styles to evaluate"}
    )
    subset_size: int = field(default=500, metadata={"help": "GSM8K test problems (1319: all of them)"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    max_tokens: int = field(default=1024, metadata={"help": "response length cap (tokens)"})
    failures_per_outcome: int = field(default=3, metadata={"help": "failure examples shown per failure outcome"})


def failures_markdown(prompt: str, records: list[dict], per_outcome: int) -> str:
    lines = [f"\n### Failures with the {prompt} prompt\n"]
    for outcome, examples in failure_examples(records, per_outcome).items():
        lines.append(f"**{outcome.replace('_', ' ')}**\n")
        for r in examples:
            response = r["response"] if len(r["response"]) < 700 else r["response"][:700] + " [...]"
            lines.append(f"- test #{r['test_index']}, truth `{r['ground_truth']}`: `{response!r}`")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    cfg = parse_config(MathBaselineConfig)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    summaries, rows, generations, estimates, notes = [], [], [], {}, ""
    for name in cfg.prompts:
        subset = SubsetEvaluation.gsm8k(sampler, cfg.subset_size, cfg.subset_seed, 1, cfg.max_tokens, name)
        started = time.perf_counter()
        result = subset.run()
        seconds = time.perf_counter() - started
        tokens = sum(r["response_tokens"] for r in result.records)
        summary = {"prompt": name, **summarize_evaluation(result.records), "seconds": seconds}
        summary["tokens_per_second"] = tokens / seconds
        estimates[name] = accuracy_estimates(result.records)
        summaries.append(summary)
        rows.append(summary | {key: str(e) for key, e in estimates[name].items()})
        generations += [{"prompt_style": name, **r} for r in result.records]
        notes += failures_markdown(name, result.records, cfg.failures_per_outcome)
    title = f"Zero-shot GSM8K accuracy of {cfg.policy.model} ({cfg.subset_size} test problems, greedy)"
    details = {"summaries": summaries, "max_tokens": cfg.max_tokens, "subset": subset.indices}
    write_report(cfg.out_dir, "math_baseline", title, rows, COLUMNS, details, notes)
    write_jsonl_atomic(f"{cfg.out_dir}/metrics.jsonl", [{"step": 0, **s} for s in summaries])
    write_jsonl_atomic(f"{cfg.out_dir}/generations.jsonl", generations)
    plot_estimates(estimates, f"{cfg.out_dir}/math_baseline.png", title, "mean reward (95% Wilson interval)")
    for row in rows:
        print(f"{row['prompt']:>14}: reward {row['reward']}  format {row['format_reward']}")
    print(f"table: {cfg.out_dir}/math_baseline.md  plot: {cfg.out_dir}/math_baseline.png")


if __name__ == "__main__":
    main()
