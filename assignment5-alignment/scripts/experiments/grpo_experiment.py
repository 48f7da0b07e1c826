"""grpo_experiment: one GRPO run on GSM8K train (a point of the learning-rate sweep or one ablation), evaluated on
the fixed test subset before and after (paired 95% interval of the change) and validated along the way; logs the
reward, entropy, response length and the learning-signal diagnostics (groups with equal rewards, within-group
reward spread) of every step.

GPU (one call each; from an SFT checkpoint saved earlier in the lease: --policy.model /tmp/a5/sft):
    bash assignment5-alignment/scripts/gpu_run.sh grpo_experiment --out_dir $OUT --grpo.learning_rate 1e-5 \
        --grpo.max_seconds 420
Ablations: --grpo.loss_type no_baseline | --grpo.length_normalization constant | --no-grpo.use_std_normalization |
    off-policy: --grpo.epochs_per_rollout_batch 4 --grpo.train_batch_size 64 --grpo.gradient_accumulation_steps 32 \
    --grpo.loss_type grpo_clip (or grpo_no_clip)
Then scripts/experiments/compare_grpo_runs.py overlays the runs. CPU smoke test:
    uv run python assignment5-alignment/scripts/experiments/grpo_experiment.py --grpo.n_grpo_steps 1 \
        --grpo.rollout_batch_size 4 --grpo.group_size 2 --grpo.train_batch_size 4 --grpo.gradient_accumulation_steps 2 \
        --grpo.sampling_max_tokens 8 --subset_size 2 --val_size 2 --out_dir runs/grpo_smoke
Writes grpo.md/.json (summary row with diagnostics), grpo.png, metrics.jsonl (every step), generations.jsonl
(the final evaluation).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cs336_alignment.grpo_loop import GRPOConfig, train_grpo
from cs336_alignment.grpo_report import COLUMNS, CURVES, LABELS, default_run_name, summarize_grpo_run
from cs336_alignment.math_data import load_gsm8k
from cs336_alignment.math_eval import mean_metrics
from cs336_alignment.plots import plot_metrics
from cs336_alignment.reports import write_report
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_setup import PolicyConfig, load_policy, policy_sampler
from cs336_alignment.subset_eval import SubsetEvaluation
from cs336_basics.toolkit.atomic import write_jsonl_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.metrics import MetricsLogger


@dataclass
class GRPOExperimentConfig:
    """One GRPO run from a policy (base or SFT checkpoint), measured on the fixed GSM8K test subset."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    out_dir: str = field(default="runs/grpo_experiment", metadata={"help": "folder for the table, plot and JSONL"})
    run_name: str = field(default="", metadata={"help": "label in tables and plots (default: the changed flags)"})
    subset_size: int = field(default=500, metadata={"help": "fixed GSM8K test subset, evaluated before and after"})
    subset_seed: int = field(default=0, metadata={"help": "seed of the subset rule (0: the committed subset)"})
    val_size: int = field(default=200, metadata={"help": "first N subset problems validated every eval_every steps"})


def main() -> None:
    cfg = parse_config(GRPOExperimentConfig)
    out_dir = Path(cfg.out_dir)
    run_name = cfg.run_name or default_run_name(cfg.grpo)
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    subset = SubsetEvaluation.gsm8k(
        sampler, cfg.subset_size, cfg.subset_seed, cfg.val_size, cfg.grpo.sampling_max_tokens
    )
    train = load_gsm8k("train")
    started = time.perf_counter()
    before = subset.run().records
    records: list[dict] = []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:

        def log(record: dict) -> None:
            records.append(record)
            logger.log(**record)

        log({"step": 0, **{f"val_{k}": v for k, v in mean_metrics(before[: cfg.val_size]).items()}})
        train_grpo(policy, tokenizer, sampler, train, r1_zero_reward_fn, cfg.grpo, log, lambda s: subset.validate())
    sampler.sync_weights(policy)
    after = subset.run().records
    steps = [r for r in records if r.get("phase") == "grpo"]
    row, estimates = summarize_grpo_run(run_name, before, after, steps)
    row["seconds"] = time.perf_counter() - started
    details = {"estimates": estimates, "grpo": asdict(cfg.grpo), "model": cfg.policy.model, "subset": subset.indices}
    title = f"GRPO of {cfg.policy.model} on GSM8K: {run_name}"
    write_report(out_dir, "grpo", title, [row], COLUMNS, details)
    write_jsonl_atomic(out_dir / "generations.jsonl", [{"when": "after", **r} for r in after])
    plot_metrics(records, CURVES, out_dir / "grpo.png", title, labels=LABELS)
    print(f"{run_name}: accuracy {row['before']} -> {row['after']}, change {row['change']}")
    print(f"table: {out_dir / 'grpo.md'}  plot: {out_dir / 'grpo.png'}")


if __name__ == "__main__":
    main()
