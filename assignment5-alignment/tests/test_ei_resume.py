"""Expert iteration that spans several calls (``--state_dir``): a setting stopped after every round and resumed
ends with the weights, records and report of an uninterrupted one, bitwise on the CPU in float32 (the same ops in
the same order on the same numbers; dropout's random state and AdamW's state travel with the state); a finished
setting reports again without the model; another run's state is refused, and a state is written atomically."""

import os
import random
from dataclasses import replace

import pytest
import torch
from cs336_alignment.experiments import ei_state, expert_iteration_sweep
from cs336_alignment.experiments.configs import ExpertIterationSweepConfig
from cs336_alignment.experiments.ei_state import (
    EIRunState,
    load_state,
    save_state,
    saved_states,
    setting_config,
    setting_folder,
)
from cs336_alignment.expert_iteration import EIProgress
from cs336_alignment.loop_configs import ExpertIterationConfig, SFTConfig
from cs336_alignment.math_eval import PROMPT_STYLES
from cs336_alignment.run_config import PolicyConfig
from cs336_alignment.subset_eval import SubsetEvaluation

from tests.resume_helpers import (
    odd_length_reward,
    read_jsonl,
    stepped_optimizer,
    trainer_save_killed,
    without_last_column,
)

EVERY_ROUND = 1e-9
"""An ``ei_max_seconds`` that every round passes: each call trains exactly one round, whatever the machine's speed."""


def _sweep(policy: PolicyConfig, tmp_path, name: str, **ei) -> ExpertIterationSweepConfig:
    return ExpertIterationSweepConfig(
        policy=policy,
        ei=ExpertIterationConfig(questions_per_step=2, ei_max_tokens=4, **ei),
        sft=SFTConfig(batch_size=2, gradient_accumulation_steps=1, lr=1e-3),
        out_dir=str(tmp_path / name),
        settings=["2x3"],
        subset_size=2,
        val_size=1,
        state_dir=str(tmp_path / f"{name}_state"),
    )


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("step_seconds", "seconds")}


def test_a_setting_stopped_after_every_round_and_resumed_equals_an_uninterrupted_one(
    tiny_checkpoint, tiny_gpt2, tmp_path, monkeypatch
):
    final_evaluations, weights = [], []
    real_run, real_ei = SubsetEvaluation.run, expert_iteration_sweep.run_expert_iteration

    def counting_run(self, limit=None, *args, **kwargs):
        if limit is None:
            final_evaluations.append(self)
        return real_run(self, limit, *args, **kwargs)

    def keeping_weights(policy, *args, **kwargs):
        progress = real_ei(policy, *args, **kwargs)
        weights.append({k: v.clone() for k, v in policy.state_dict().items()})
        return progress

    monkeypatch.setattr(SubsetEvaluation, "run", counting_run)
    monkeypatch.setattr(expert_iteration_sweep, "run_expert_iteration", keeping_weights)
    # a reward the random policy earns now and then, so that rounds keep examples and the weights move
    style = replace(PROMPT_STYLES["r1_zero"], reward_fn=odd_length_reward)
    monkeypatch.setattr(expert_iteration_sweep, "prompt_style", lambda name: style)
    whole_rows = expert_iteration_sweep.run_expert_iteration_sweep(_sweep(tiny_checkpoint, tmp_path, "whole"))
    assert len(final_evaluations) == 1

    resumed = _sweep(tiny_checkpoint, tmp_path, "resumed", ei_max_seconds=EVERY_ROUND)
    folder = setting_folder(resumed, "2x3")
    for call in range(1, 4):
        final_evaluations.clear()
        torch.manual_seed(1000 + call)  # as in a new process: torch's generator elsewhere
        (row,) = expert_iteration_sweep.run_expert_iteration_sweep(resumed)
        assert row["rounds_done"] == call and len(final_evaluations) == (1 if call == 3 else 0)
        assert ("reward" in row) == (call == 3)  # an accuracy only once every round is done
        assert [p.name for p in saved_states(folder)] == (["finished"] if call == 3 else [f"round_{call:03d}"])
    assert "Unfinished" not in (tmp_path / "resumed" / "expert_iteration_experiment.md").read_text()
    assert all(torch.equal(weights[0][k], weights[-1][k]) for k in weights[0])
    start = tiny_gpt2.state_dict()
    assert not all(torch.equal(start[k], weights[0][k]) for k in start)  # the weights did move

    whole_records, resumed_records = (read_jsonl(tmp_path / name / "metrics.jsonl") for name in ("whole", "resumed"))
    assert [r["ei_round"] for r in resumed_records if r.get("phase") != "sft"] == [0, 1, 2, 3]  # one "before"
    assert [_without_timing(r) for r in resumed_records] == [_without_timing(r) for r in whole_records]
    assert all(r["kept_examples"] for r in resumed_records if r.get("phase") == "ei_rollout")  # every round trained
    report = tmp_path / "resumed" / "expert_iteration_experiment.md"
    assert without_last_column(tmp_path / "whole" / "expert_iteration_experiment.md") == without_last_column(report)
    assert [_without_timing(r) for r in whole_rows] == [_without_timing(row)]

    # a finished setting: the same report, without loading the model or training; ei_max_seconds may change
    def no_model(cfg):
        raise AssertionError("a finished run loads no model")

    monkeypatch.setattr(expert_iteration_sweep, "load_policy", no_model)
    before = report.read_text()
    final_evaluations.clear()
    again = expert_iteration_sweep.run_expert_iteration_sweep(
        replace(resumed, ei=replace(resumed.ei, ei_max_seconds=0))
    )
    assert again == [row] and report.read_text() == before and not final_evaluations
    assert read_jsonl(tmp_path / "resumed" / "metrics.jsonl") == resumed_records
    assert [p.name for p in saved_states(folder)] == ["finished"]


def _progress(next_round: int, trained: bool = True) -> tuple[EIProgress, dict[str, torch.Tensor]]:
    """A real optimiser's state after one step (or none, before any round kept an example), and the weights."""
    optimizer, weights = stepped_optimizer()
    return EIProgress.capture(next_round, 2 * next_round, optimizer if trained else None, random.Random(7)), weights


def _state(cfg: ExpertIterationSweepConfig, next_round: int, trained: bool = True) -> EIRunState:
    progress, weights = _progress(next_round, trained)
    return EIRunState(setting_config(cfg, "4x3"), [{"step": next_round}], 1.5 * next_round, progress, weights)


def test_a_state_round_trips_and_a_save_cut_short_is_never_loaded(tmp_path, monkeypatch):
    cfg = ExpertIterationSweepConfig(settings=["4x3"], state_dir=str(tmp_path / "state"))
    folder, config = setting_folder(cfg, "4X3"), setting_config(cfg, "4x3")
    assert folder == tmp_path / "state" / "4x3"
    assert load_state(folder, config) is None  # no folder: a fresh run

    save_state(folder, _state(cfg, 1, trained=False))  # nothing kept yet: no optimiser state
    loaded = load_state(folder, config)
    assert loaded.progress.optimizer is None and loaded.progress.step == 2 and loaded.seconds == 1.5

    with trainer_save_killed(monkeypatch), pytest.raises(OSError, match="killed"):
        save_state(folder, _state(cfg, 2))
    leftovers = [p.name for p in folder.iterdir()]
    assert len(leftovers) == 2 and "round_001" in leftovers  # the half-written one is a hidden temporary
    assert load_state(folder, config).progress.next_round == 1

    second = _state(cfg, 2)
    save_state(folder, second)
    assert [p.name for p in folder.iterdir()] == ["round_002"]  # temporary and old state gone
    loaded = load_state(folder, config)
    assert loaded.progress.next_round == 2 and loaded.records == second.records
    assert loaded.progress.question_rng == random.Random(7).getstate()
    assert all(torch.equal(loaded.policy[k], second.policy[k]) for k in second.policy)
    assert loaded.progress.optimizer["state"][0]["exp_avg"].equal(second.progress.optimizer["state"][0]["exp_avg"])
    with pytest.raises(FileExistsError):
        save_state(folder, _state(cfg, 2))

    finished = EIRunState(config, [{"step": 6}], 9.0, None, None, [{"reward": 1.0}])
    real_rename = os.rename
    monkeypatch.setattr(ei_state.os, "rename", lambda *args: (_ for _ in ()).throw(OSError("killed before rename")))
    with pytest.raises(OSError, match="killed"):
        save_state(folder, finished)
    monkeypatch.setattr(ei_state.os, "rename", real_rename)
    assert load_state(folder, config).progress.next_round == 2
    save_state(folder, finished)
    assert [p.name for p in folder.iterdir()] == ["finished"]
    assert sorted(p.name for p in (folder / "finished").iterdir()) == ["run.json"]  # no weights to keep
    loaded = load_state(folder, config)
    assert loaded.final == [{"reward": 1.0}] and loaded.progress is None and loaded.seconds == 9.0


def test_another_runs_state_is_refused_before_the_model_loads(tmp_path):
    cfg = ExpertIterationSweepConfig(
        policy=PolicyConfig(model=str(tmp_path / "missing")), settings=["4x3"], state_dir=str(tmp_path / "state")
    )
    save_state(setting_folder(cfg, "4x3"), _state(cfg, 1))
    other = replace(cfg, sft=replace(cfg.sft, lr=1e-4))
    with pytest.raises(ValueError, match=r"another run \(sft.lr: saved 2e-05, now 0.0001\)"):
        expert_iteration_sweep.run_expert_iteration_sweep(other)
    same = replace(
        cfg,
        ei=replace(cfg.ei, ei_max_seconds=30.0, n_ei_steps=9, rollouts_per_question=9),  # the setting's G and R win
        settings=["4x3", "8x3"],
        state_dir=str(tmp_path / "moved"),
        out_dir=str(tmp_path / "elsewhere"),
    )
    ei_state.check_same_run(setting_config(cfg, "4x3"), setting_config(same, "4x3"), tmp_path)


def test_a_setting_listed_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        ExpertIterationSweepConfig(settings=["4x3", "4X3"])
