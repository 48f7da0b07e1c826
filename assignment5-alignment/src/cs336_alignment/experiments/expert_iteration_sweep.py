"""Expert iteration on GSM8K train under several settings of samples per question (G) and rounds, each from the
same initial policy; accuracy on the fixed test subset after every round, the final accuracy on all of it with a
95% interval: what ``scripts/experiments/expert_iteration_experiment.py`` runs. ``--prompt`` picks one prompt
style of ``math_eval.PROMPT_STYLES``: its prompt, stop strings and reward serve rollouts and every evaluation."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from cs336_basics.toolkit.metrics import MetricsLogger

from cs336_alignment.experiments.configs import ExpertIterationSweepConfig, parse_setting
from cs336_alignment.expert_iteration import run_expert_iteration
from cs336_alignment.math_data import load_gsm8k
from cs336_alignment.math_eval import PromptStyle, accuracy_estimates, prompt_style, summarize_evaluation
from cs336_alignment.plots import plot_runs
from cs336_alignment.reports import write_report
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.subset_eval import SubsetEvaluation

COLUMNS = {
    "setting": "G x rounds",
    "rollout_rewards": "rollout reward per round",
    "kept_examples": "kept examples per round",
    "sft_steps": "SFT steps",
    "reward": "test accuracy (95% CI)",
    "format_reward": "format reward (95% CI)",
    "seconds": "seconds",
}


def run_setting(
    cfg: ExpertIterationSweepConfig,
    setting: str,
    style: PromptStyle,
    base: torch.nn.Module,
    tokenizer: Any,
    train: list,
    logger: MetricsLogger,
) -> tuple[list[dict], list[dict]]:
    """Expert iteration of a copy of ``base``: its log records (each tagged with its round) and final evaluation."""
    samples, rounds = parse_setting(setting)
    ei_cfg = replace(cfg.ei, rollouts_per_question=samples, n_ei_steps=rounds)
    policy = copy.deepcopy(base)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    subset = SubsetEvaluation.gsm8k(
        sampler, cfg.subset_size, cfg.subset_seed, cfg.val_size, cfg.ei.ei_max_tokens, style.name
    )
    records: list[dict] = []

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        return subset.validate()

    def log(record: dict) -> None:
        ei_round = record.get("ei_round", records[-1]["ei_round"] if records else 0)
        records.append({**record, "ei_round": ei_round})
        logger.log(setting=setting, **records[-1])

    log({"step": 0, "ei_round": 0, **evaluate(0)})
    run_expert_iteration(policy, tokenizer, sampler, train, style, ei_cfg, cfg.sft, log, evaluate)
    sampler.sync_weights(policy)
    return records, subset.run().records


def run_expert_iteration_sweep(cfg: ExpertIterationSweepConfig) -> list[dict[str, Any]]:
    """One expert-iteration run per setting; write ``expert_iteration_experiment.{md,json,png}`` and
    ``metrics.jsonl`` to ``out_dir``; return the table's rows."""
    out_dir = Path(cfg.out_dir)
    style = prompt_style(cfg.prompt)  # an unknown prompt fails before the model loads
    base, tokenizer = load_policy(cfg.policy)
    train = load_gsm8k("train")
    runs, rows, details = {}, [], []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:
        for setting in cfg.settings:
            samples, rounds = parse_setting(setting)
            started = time.perf_counter()
            records, final = run_setting(cfg, setting, style, base, tokenizer, train, logger)
            runs[f"G={samples}, {rounds} rounds"] = records
            rollouts = [r for r in records if r.get("phase") == "ei_rollout"]
            estimates = accuracy_estimates(final)
            summary = {
                "setting": setting,
                "rollout_rewards": " ".join(f"{r['rollout_reward']:.3f}" for r in rollouts),
                "kept_examples": " ".join(str(r["kept_examples"]) for r in rollouts),
                "sft_steps": max(r["step"] for r in records),
                **summarize_evaluation(final),
                "seconds": time.perf_counter() - started,
            }
            details.append(summary)
            rows.append(summary | {k: str(e) for k, e in estimates.items()})
            print(f"{setting}: test accuracy {estimates['reward']}")
    title = f"Expert iteration of {cfg.policy.model} on GSM8K ({style.name} prompt, {cfg.subset_size} test problems)"
    config = {"prompt": style.name, "ei": asdict(cfg.ei), "sft": asdict(cfg.sft)}
    write_report(out_dir, "expert_iteration_experiment", title, rows, COLUMNS, {"runs": details, **config})
    plot_runs(
        runs,
        ["val_reward", "rollout_reward", "kept_examples"],
        out_dir / "expert_iteration_experiment.png",
        title,
        x_key="ei_round",
        labels={
            "val_reward": f"accuracy on {cfg.val_size} test problems",
            "rollout_reward": "share of rollouts kept",
            "kept_examples": "verified examples kept",
        },
    )
    print(f"table: {out_dir / 'expert_iteration_experiment.md'}  plot: {out_dir / 'expert_iteration_experiment.png'}")
    return rows
