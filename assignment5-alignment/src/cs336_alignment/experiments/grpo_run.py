"""One GRPO run on GSM8K train (a point of the learning-rate sweep or one ablation), evaluated on the fixed test
subset before and after (paired 95% interval of the change) and validated along the way, with the learning-signal
diagnostics of every step: what ``scripts/experiments/grpo_experiment.py`` runs. ``--prompt`` picks one prompt
style of ``math_eval.PROMPT_STYLES``: its prompt, stop strings and reward serve rollouts and every evaluation.
With ``--state_dir`` a run spans several calls of the same command (``experiments.grpo_state``); every call
writes the full report of the steps so far."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.atomic import write_jsonl_atomic
from cs336_basics.toolkit.metrics import MetricsLogger

from cs336_alignment.experiments.configs import GRPOExperimentConfig
from cs336_alignment.experiments.grpo_state import GRPORunState, load_state, save_state
from cs336_alignment.experiments.run_state import flat_config
from cs336_alignment.grpo_loop import train_grpo
from cs336_alignment.grpo_report import COLUMNS, CURVES, LABELS, default_run_name, summarize_grpo_run
from cs336_alignment.math_data import load_gsm8k
from cs336_alignment.math_eval import mean_metrics, prompt_style
from cs336_alignment.plots import plot_metrics
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.subset_eval import SubsetEvaluation


def run_grpo_experiment(cfg: GRPOExperimentConfig) -> dict[str, Any]:
    """Evaluate, train, evaluate again; write ``grpo.{md,json,png}``, ``metrics.jsonl`` (every step) and
    ``generations.jsonl`` (the final evaluation) to ``out_dir``; return the summary row. With ``state_dir``, start
    from the state saved there (no second "before" evaluation) and save the state again when training stops."""
    out_dir = Path(cfg.out_dir)
    style = prompt_style(cfg.prompt)  # an unknown prompt fails before the model loads
    run_name = experiment_run_name(cfg)
    saved = load_state(cfg.state_dir, cfg) if cfg.state_dir else None  # so does another run's state
    policy, tokenizer = load_policy(cfg.policy)
    if saved is not None:
        policy.load_state_dict(saved.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    if saved is not None:
        sampler.sync_weights(policy)  # vLLM loads the starting checkpoint, not the saved weights
    subset = SubsetEvaluation.gsm8k(
        sampler, cfg.subset_size, cfg.subset_seed, cfg.val_size, cfg.grpo.sampling_max_tokens, style.name
    )
    train = load_gsm8k("train")
    before = subset.run().records if saved is None else saved.before
    records: list[dict] = []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:

        def log(record: dict) -> None:
            records.append(record)
            logger.log(**record)

        if saved is None:
            log({"step": 0, **{f"val_{k}": v for k, v in mean_metrics(before[: cfg.val_size]).items()}})
        else:
            print(f"resuming {run_name} at step {saved.progress.next_step} of {cfg.grpo.n_grpo_steps}")
            for record in saved.records:
                log(record)
        progress = train_grpo(
            policy,
            tokenizer,
            sampler,
            train,
            style,
            cfg.grpo,
            log,
            lambda s: subset.validate(),
            resume=None if saved is None else saved.progress,
        )
    if cfg.state_dir and (saved is None or progress.next_step > saved.progress.next_step):
        folder = save_state(
            cfg.state_dir, GRPORunState(flat_config(cfg), before, records, progress, policy.state_dict())
        )
        print(f"state after step {progress.next_step} of {cfg.grpo.n_grpo_steps}: {folder}")
    sampler.sync_weights(policy)
    after = subset.run().records
    steps = [r for r in records if r.get("phase") == "grpo"]
    row, estimates = summarize_grpo_run(run_name, before, after, steps)
    details = {
        "estimates": estimates,
        "grpo": asdict(cfg.grpo),
        "prompt": style.name,
        "model": cfg.policy.model,
        "subset": subset.indices,
    }
    title = f"GRPO of {cfg.policy.model} on GSM8K ({style.name} prompt): {run_name}"
    write_report(out_dir, "grpo", title, [row], COLUMNS, details)
    write_jsonl_atomic(out_dir / "generations.jsonl", [{"when": "after", **r} for r in after])
    plot_metrics(records, CURVES, out_dir / "grpo.png", title, labels=LABELS)
    print(f"{run_name}: accuracy {row['before']} -> {row['after']}, change {row['change']}")
    print(f"table: {out_dir / 'grpo.md'}  plot: {out_dir / 'grpo.png'}")
    return row


def experiment_run_name(cfg: GRPOExperimentConfig) -> str:
    """``--run_name``, or the GRPO options that differ from the defaults, led by the prompt when it is not
    r1_zero, so that a prompt ablation's default label tells it apart."""
    if cfg.run_name:
        return cfg.run_name
    changed = default_run_name(cfg.grpo)
    if cfg.prompt == "r1_zero":
        return changed
    return f"prompt={cfg.prompt}" if changed == "defaults" else f"prompt={cfg.prompt} {changed}"
