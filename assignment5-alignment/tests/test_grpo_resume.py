"""GRPO runs that span several calls (``--state_dir``): a run stopped after every step and resumed ends with the
weights, optimiser state and metrics of an uninterrupted one, bitwise on the CPU in float32 (the same ops in the
same order on the same numbers; dropout's random state travels with the state). Another run's state is refused,
and a state is written atomically."""

import random
from dataclasses import replace

import pytest
import torch
from cs336_alignment.experiments import grpo_run, grpo_state
from cs336_alignment.experiments.configs import GRPOExperimentConfig
from cs336_alignment.experiments.grpo_state import GRPORunState, load_state, save_state, saved_states
from cs336_alignment.experiments.run_state import flat_config
from cs336_alignment.grpo_loop import GRPOProgress
from cs336_alignment.math_eval import PROMPT_STYLES
from cs336_alignment.run_config import PolicyConfig
from cs336_alignment.subset_eval import SubsetEvaluation

from tests.conftest import TINY_CHECKPOINT_GRPO
from tests.resume_helpers import (
    odd_length_reward,
    read_jsonl,
    stepped_optimizer,
    trainer_save_killed,
    without_last_column,
)

GRPO = replace(TINY_CHECKPOINT_GRPO, n_grpo_steps=3, eval_every=2)
TIMING = {"rollout_seconds", "step_seconds"}
EVERY_STEP = 1e-9
"""A ``max_seconds`` that every step passes: each call trains exactly one step, whatever the machine's speed."""


def _experiment(policy: PolicyConfig, tmp_path, name: str, **grpo) -> GRPOExperimentConfig:
    return GRPOExperimentConfig(
        policy=policy,
        grpo=replace(GRPO, **grpo),
        out_dir=str(tmp_path / name),
        subset_size=2,
        val_size=2,
        state_dir=str(tmp_path / f"{name}_state"),
    )


def _assert_identical(x, y, where: str) -> None:
    """Equal nested dicts, lists and tuples of equal values, tensors bitwise."""
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for key in x:
            _assert_identical(x[key], y[key], f"{where}/{key}")
    elif isinstance(x, list | tuple):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_identical(u, v, f"{where}/{i}")
    else:
        assert x == y, where


def _without_timing_and_validation(record: dict) -> dict:
    """A step record less its timings and its validation (a call validates the step it stops at)."""
    return {k: v for k, v in record.items() if k not in TIMING and not (k.startswith("val_") and record["step"])}


def test_a_run_stopped_after_every_step_and_resumed_equals_an_uninterrupted_one(tiny_checkpoint, tmp_path, monkeypatch):
    full_evaluations = []
    real_run = SubsetEvaluation.run

    def counting_run(self, limit=None, *args, **kwargs):
        if limit is None:
            full_evaluations.append(self)
        return real_run(self, limit, *args, **kwargs)

    monkeypatch.setattr(SubsetEvaluation, "run", counting_run)
    # a reward the random policy earns now and then, so that groups differ and the weights move
    style = replace(PROMPT_STYLES["r1_zero"], reward_fn=odd_length_reward)
    monkeypatch.setattr(grpo_run, "prompt_style", lambda name: style)
    whole = grpo_run.run_grpo_experiment(_experiment(tiny_checkpoint, tmp_path, "whole"))
    assert len(full_evaluations) == 2  # before and after

    resumed = _experiment(tiny_checkpoint, tmp_path, "resumed", max_seconds=EVERY_STEP)
    for call in range(1, 4):
        full_evaluations.clear()
        torch.manual_seed(1000 + call)  # as in a new process: torch's generator elsewhere
        row = grpo_run.run_grpo_experiment(resumed)
        assert row["steps"] == call and len(full_evaluations) == (2 if call == 1 else 1)  # one "before" in all
        assert [p.name for p in saved_states(tmp_path / "resumed_state")] == [f"step_{call:06d}"]
    # a call after the last step trains nothing and saves nothing; max_seconds and eval_every may change
    row = grpo_run.run_grpo_experiment(replace(resumed, grpo=replace(resumed.grpo, max_seconds=0.0, eval_every=1)))
    assert row == whole | {"train_seconds": row["train_seconds"]}
    assert [p.name for p in saved_states(tmp_path / "resumed_state")] == ["step_000003"]

    for file in ("policy.pt", "trainer.pt"):  # weights, AdamW's moments and the random generators' states
        _assert_identical(
            *(torch.load(tmp_path / f"{name}_state" / "step_000003" / file) for name in ("whole", "resumed")), file
        )
    whole_records, resumed_records = (read_jsonl(tmp_path / name / "metrics.jsonl") for name in ("whole", "resumed"))
    assert [r["step"] for r in resumed_records] == [0, 1, 2, 3]
    assert [_without_timing_and_validation(r) for r in resumed_records] == [
        _without_timing_and_validation(r) for r in whole_records
    ]
    assert sum(r["no_learning_signal"] for r in resumed_records[1:]) < 3  # some step moved the weights
    assert "val_reward" in resumed_records[1] and "val_reward" not in whole_records[1]  # the stop step's
    assert resumed_records[2]["val_reward"] == whole_records[2]["val_reward"]  # eval_every's, in both
    # the training time of every call's step, not only of the last call (which trained none)
    assert row["train_seconds"] == pytest.approx(sum(r["step_seconds"] for r in resumed_records[1:]))
    assert (tmp_path / "whole" / "generations.jsonl").read_text() == (
        tmp_path / "resumed" / "generations.jsonl"
    ).read_text()
    assert without_last_column(tmp_path / "whole" / "grpo.md") == without_last_column(tmp_path / "resumed" / "grpo.md")


def _progress(next_step: int) -> tuple[GRPOProgress, dict[str, torch.Tensor]]:
    """A real optimiser's state after one step, and the weights it moved."""
    optimizer, weights = stepped_optimizer()
    return GRPOProgress.capture(next_step, optimizer, random.Random(7)), weights


def _state(cfg: GRPOExperimentConfig, next_step: int) -> GRPORunState:
    progress, weights = _progress(next_step)
    return GRPORunState(flat_config(cfg), [{"question": "q"}], [{"step": next_step}], progress, weights)


def test_another_runs_state_is_refused_before_the_model_loads(tmp_path):
    cfg = GRPOExperimentConfig(policy=PolicyConfig(model=str(tmp_path / "missing")), state_dir=str(tmp_path / "state"))
    save_state(cfg.state_dir, _state(cfg, 5))
    other = replace(cfg, grpo=replace(cfg.grpo, learning_rate=2e-5))
    with pytest.raises(ValueError, match=r"another run \(grpo.learning_rate: saved 1e-05, now 2e-05\)"):
        grpo_run.run_grpo_experiment(other)
    same = replace(
        cfg,
        grpo=replace(cfg.grpo, max_seconds=30.0, eval_every=3),
        state_dir=str(tmp_path / "moved"),
        out_dir=str(tmp_path / "elsewhere"),
    )
    grpo_state.check_same_run(flat_config(cfg), same, tmp_path)


def test_a_state_round_trips_and_a_save_cut_short_is_never_loaded(tmp_path, monkeypatch):
    cfg = GRPOExperimentConfig(state_dir=str(tmp_path / "state"))
    first = _state(cfg, 1)
    save_state(cfg.state_dir, first)
    loaded = load_state(cfg.state_dir, cfg)
    assert loaded.progress.next_step == 1 and loaded.records == first.records and loaded.before == first.before
    assert loaded.progress.question_rng == random.Random(7).getstate()
    assert all(torch.equal(loaded.policy[k], first.policy[k]) for k in first.policy)

    with trainer_save_killed(monkeypatch), pytest.raises(OSError, match="killed"):
        save_state(cfg.state_dir, _state(cfg, 2))
    leftovers = [p.name for p in (tmp_path / "state").iterdir()]
    assert len(leftovers) == 2 and "step_000001" in leftovers  # the half-written one is a hidden temporary
    assert load_state(cfg.state_dir, cfg).progress.next_step == 1

    save_state(cfg.state_dir, _state(cfg, 2))
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["step_000002"]  # temporary and old state gone
    assert load_state(cfg.state_dir, cfg).progress.next_step == 2
    with pytest.raises(FileExistsError):
        save_state(cfg.state_dir, _state(cfg, 2))


def test_no_state_folder_means_a_fresh_run(tmp_path):
    assert load_state(tmp_path / "absent", GRPOExperimentConfig()) is None
