"""Expert iteration on GSM8K train under several settings of samples per question (G) and rounds, each from the
same initial policy; accuracy on the fixed test subset after every round, the final accuracy on all of it with a
95% interval: what ``scripts/experiments/expert_iteration_experiment.py`` runs. ``--prompt`` picks one prompt
style of ``math_eval.PROMPT_STYLES``: its prompt, stop strings and reward serve rollouts and every evaluation.
With ``--state_dir`` each setting saves its state after every round and spans several calls of the same command
(``experiments.ei_state``); every call writes the report of all the settings' rounds so far."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from cs336_basics.toolkit.metrics import MetricsLogger

from cs336_alignment.experiments.configs import ExpertIterationSweepConfig, parse_setting
from cs336_alignment.experiments.ei_state import EIRunState, load_state, save_state, setting_config, setting_folder
from cs336_alignment.expert_iteration import EIProgress, run_expert_iteration
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


@dataclass
class SettingRun:
    """One setting's log records (each tagged with its round), its final evaluation (None while rounds are left)
    and its seconds over every call."""

    records: list[dict]
    final: list[dict] | None
    seconds: float


def run_setting(
    cfg: ExpertIterationSweepConfig,
    setting: str,
    style: PromptStyle,
    base: torch.nn.Module,
    tokenizer: Any,
    train: list,
    logger: MetricsLogger,
    saved: EIRunState | None,
) -> SettingRun:
    """Expert iteration of a copy of ``base``, or of the ``saved`` state's weights from its next round; saved
    after every round and when finished, with ``--state_dir``."""
    started = time.perf_counter()
    samples, rounds = parse_setting(setting)
    ei_cfg = replace(cfg.ei, rollouts_per_question=samples, n_ei_steps=rounds)
    config = setting_config(cfg, setting)
    policy = copy.deepcopy(base)
    if saved is not None:
        policy.load_state_dict(saved.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    if saved is not None:
        sampler.sync_weights(policy)  # vLLM loads the starting checkpoint, not the saved weights
    subset = SubsetEvaluation.gsm8k(
        sampler, cfg.subset_size, cfg.subset_seed, cfg.val_size, cfg.ei.ei_max_tokens, style.name
    )
    records: list[dict] = []
    seconds_before = 0.0 if saved is None else saved.seconds

    def seconds() -> float:
        return seconds_before + time.perf_counter() - started

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        return subset.validate()

    def log(record: dict) -> None:
        ei_round = record.get("ei_round", records[-1]["ei_round"] if records else 0)
        records.append({**record, "ei_round": ei_round})
        logger.log(setting=setting, **records[-1])

    def save_round(progress: EIProgress) -> None:
        save_state(setting_folder(cfg, setting), EIRunState(config, records, seconds(), progress, policy.state_dict()))

    if saved is None:
        log({"step": 0, "ei_round": 0, **evaluate(0)})
    else:
        print(f"resuming {setting} at round {saved.progress.next_round + 1} of {rounds}")
        for record in saved.records:
            log(record)
    progress = run_expert_iteration(
        policy,
        tokenizer,
        sampler,
        train,
        style,
        ei_cfg,
        cfg.sft,
        log,
        evaluate,
        resume=None if saved is None else saved.progress,
        save_round=save_round if cfg.state_dir else None,
    )
    if progress.next_round < rounds:
        print(f"{setting}: {progress.next_round} of {rounds} rounds done; the same command continues it")
        return SettingRun(records, None, seconds())
    sampler.sync_weights(policy)
    final, spent = subset.run().records, seconds()
    if cfg.state_dir:
        save_state(setting_folder(cfg, setting), EIRunState(config, records, spent, None, None, final))
    return SettingRun(records, final, spent)


def finished_setting(setting: str, saved: EIRunState, logger: MetricsLogger) -> SettingRun:
    """A setting whose every round and final evaluation a former call saved: its records logged again."""
    for record in saved.records:
        logger.log(setting=setting, **record)
    print(f"{setting}: finished in a former call")
    return SettingRun(saved.records, saved.final, saved.seconds)


def run_expert_iteration_sweep(cfg: ExpertIterationSweepConfig) -> list[dict[str, Any]]:
    """One expert-iteration run per setting; write ``expert_iteration_experiment.{md,json,png}`` and
    ``metrics.jsonl`` to ``out_dir``; return the table's rows. A setting with rounds left has no accuracy yet."""
    out_dir = Path(cfg.out_dir)
    style = prompt_style(cfg.prompt)  # an unknown prompt fails before the model loads
    saved = {  # so does another run's state
        s: load_state(setting_folder(cfg, s), setting_config(cfg, s)) if cfg.state_dir else None for s in cfg.settings
    }
    if all(state is not None and state.final is not None for state in saved.values()):
        base, tokenizer, train = None, None, []  # every setting is done: report without the model
    else:
        base, tokenizer = load_policy(cfg.policy)
        train = load_gsm8k("train")
    runs, rows, details, unfinished = {}, [], [], []
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:
        for setting in cfg.settings:
            samples, rounds = parse_setting(setting)
            state = saved[setting]
            if state is not None and state.final is not None:
                run = finished_setting(setting, state, logger)
            else:
                run = run_setting(cfg, setting, style, base, tokenizer, train, logger, state)
            runs[f"G={samples}, {rounds} rounds"] = run.records
            rollouts = [r for r in run.records if r.get("phase") == "ei_rollout"]
            summary = {
                "setting": setting,
                "rollouts_per_question": samples,
                "n_ei_steps": rounds,
                "rounds_done": len(rollouts),
                "rollout_rewards": " ".join(f"{r['rollout_reward']:.3f}" for r in rollouts),
                "kept_examples": " ".join(str(r["kept_examples"]) for r in rollouts),
                "sft_steps": max(r["step"] for r in run.records),
                "seconds": run.seconds,
            }
            if run.final is None:
                unfinished.append(f"{setting} after {len(rollouts)} of {rounds} rounds")
                details.append(summary)
                rows.append(summary)
                continue
            estimates = accuracy_estimates(run.final)
            summary |= summarize_evaluation(run.final)
            details.append(summary)
            rows.append(summary | {k: str(e) for k, e in estimates.items()})
            print(f"{setting}: test accuracy {estimates['reward']}")
    title = f"Expert iteration of {cfg.policy.model} on GSM8K ({style.name} prompt, {cfg.subset_size} test problems)"
    # G and the rounds come from each setting (its run's entry), not from the ``ei`` defaults they override
    shared_ei = {k: v for k, v in asdict(cfg.ei).items() if k not in ("rollouts_per_question", "n_ei_steps")}
    config = {"prompt": style.name, "ei": shared_ei, "sft": asdict(cfg.sft)}
    notes = f"Unfinished (the same command continues them): {', '.join(unfinished)}." if unfinished else ""
    write_report(out_dir, "expert_iteration_experiment", title, rows, COLUMNS, {"runs": details, **config}, notes)
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
