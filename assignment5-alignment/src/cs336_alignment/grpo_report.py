"""The summary of a GRPO run that every GRPO table shows: accuracy before and after on the same test problems,
the paired change with its 95% interval, and the diagnostics that explain a run that did not improve (steps with
no learning signal, groups with equal rewards, within-group reward spread, drift of length and entropy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from cs336_alignment.intervals import paired_difference
from cs336_alignment.loop_configs import GRPOConfig
from cs336_alignment.math_eval import accuracy_estimates

COLUMNS = {
    "run": "run",
    "steps": "steps",
    "before": "accuracy before (95% CI)",
    "after": "accuracy after (95% CI)",
    "change": "change (paired 95% CI)",
    "beats_interval": "better beyond the interval",
    "no_signal_steps": "steps with no signal",
    "frac_groups_all_same": "equal-reward groups",
    "group_reward_std": "within-group std",
    "train_reward": "rollout reward first -> last",
    "response_tokens": "length first -> last",
    "entropy": "entropy first -> last",
    "train_seconds": "training seconds",
}
CURVES = ["train_reward", "val_reward", "entropy", "response_tokens", "frac_groups_all_same", "group_reward_std"]
LABELS = {
    "train_reward": "rollout reward",
    "val_reward": "validation accuracy",
    "entropy": "entropy per response token",
    "response_tokens": "mean response length (tokens)",
    "frac_groups_all_same": "groups with equal rewards (no signal)",
    "group_reward_std": "within-group reward std",
}
_NOT_IN_NAME = ("max_seconds", "eval_every")


def default_run_name(cfg: GRPOConfig) -> str:
    """The GRPO options that differ from the defaults, as ``name=value`` pairs (``defaults`` when none do)."""
    default = GRPOConfig()
    changed = [
        f"{f.name}={getattr(cfg, f.name)}"
        for f in fields(GRPOConfig)
        if f.name not in _NOT_IN_NAME and getattr(cfg, f.name) != getattr(default, f.name)
    ]
    return " ".join(changed) or "defaults"


def first_last(records: Sequence[dict[str, Any]], key: str, span: int = 3) -> str:
    """Means of ``key`` over the first and the last ``span`` records: the drift of a curve in one cell."""
    values = [r[key] for r in records if key in r]
    if not values:
        return ""
    head, tail = values[:span], values[-span:]
    return f"{sum(head) / len(head):.3g} -> {sum(tail) / len(tail):.3g}"


def train_seconds(steps: Sequence[dict[str, Any]]) -> float:
    """Seconds the GRPO steps took (rollouts and updates; evaluations and model loading left out), summed from the
    step records: the same for a run continued across calls (``--state_dir``) as for an uninterrupted one."""
    return sum(r["step_seconds"] for r in steps)


def summarize_grpo_run(
    run: str, before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]], steps: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(table row, interval estimates) of a run from its graded evaluations before and after (the same problems,
    in the same order) and its GRPO step records."""
    if [r["question"] for r in before] != [r["question"] for r in after]:
        raise ValueError("before and after must grade the same problems in the same order")
    if not steps:
        raise ValueError("no GRPO steps were recorded")
    accuracy_before, accuracy_after = accuracy_estimates(before)["reward"], accuracy_estimates(after)["reward"]
    change = paired_difference([r["reward"] for r in before], [r["reward"] for r in after])
    row = {
        "run": run,
        "steps": len(steps),
        "before": str(accuracy_before),
        "after": str(accuracy_after),
        "change": str(change),
        "beats_interval": change.low > 0,
        "no_signal_steps": sum(bool(r["no_learning_signal"]) for r in steps),
        "frac_groups_all_same": sum(r["frac_groups_all_same"] for r in steps) / len(steps),
        "group_reward_std": sum(r["group_reward_std"] for r in steps) / len(steps),
        **{key: first_last(steps, key) for key in ("train_reward", "response_tokens", "entropy")},
        "train_seconds": train_seconds(steps),
    }
    estimates = {"before": accuracy_before.as_dict(), "after": accuracy_after.as_dict(), "change": change.as_dict()}
    return row, estimates
