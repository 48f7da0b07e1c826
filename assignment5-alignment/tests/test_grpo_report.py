"""A GRPO run's summary row: accuracies, the paired change, the no-signal diagnostics and the training time from
hand-made records; a comparison of run folders, old ones included."""

import json

import pytest
from cs336_alignment.experiments.configs import GRPOComparisonConfig
from cs336_alignment.experiments.grpo_comparison import compare_grpo_runs
from cs336_alignment.grpo_report import default_run_name, first_last, summarize_grpo_run
from cs336_alignment.loop_configs import GRPOConfig


def _graded(rewards):
    return [{"question": f"q{i}", "reward": r, "format_reward": 1.0, "answer_reward": r} for i, r in enumerate(rewards)]


def _step(no_signal, same, std, tokens, seconds=1.0):
    return {
        "step_seconds": seconds,
        "no_learning_signal": no_signal,
        "frac_groups_all_same": same,
        "group_reward_std": std,
        "response_tokens": tokens,
        "entropy": 1.0,
        "train_reward": 0.5,
    }


def test_summary_counts_no_signal_steps_and_measures_the_paired_change():
    before = _graded([0.0] * 8 + [1.0] * 2)
    after = _graded([1.0] * 4 + [0.0] * 4 + [1.0] * 2)  # four problems fixed, none broken
    steps = [_step(True, 1.0, 0.0, 300, 2.0), _step(False, 0.5, 0.2, 200, 3.0), _step(False, 0.25, 0.4, 100, 5.0)]
    row, estimates = summarize_grpo_run("lr=1e-5", before, after, steps)
    assert row["train_seconds"] == 10.0
    assert (row["run"], row["steps"], row["no_signal_steps"]) == ("lr=1e-5", 3, 1)
    assert row["frac_groups_all_same"] == pytest.approx(1.75 / 3)
    assert row["group_reward_std"] == pytest.approx(0.2)
    assert row["response_tokens"] == "200 -> 200"  # three steps: first and last three are the same
    assert estimates["before"]["mean"] == 0.2 and estimates["after"]["mean"] == 0.6
    assert estimates["change"]["mean"] == pytest.approx(0.4) and estimates["change"]["low"] > 0
    assert row["beats_interval"] is True
    with pytest.raises(ValueError, match="same problems"):
        summarize_grpo_run("x", before, before[::-1], steps)


def test_first_last_and_run_names():
    records = [{"v": float(i)} for i in range(10)]
    assert first_last(records, "v") == "1 -> 8"
    assert default_run_name(GRPOConfig()) == "defaults"
    name = default_run_name(GRPOConfig(learning_rate=3e-5, use_std_normalization=False, max_seconds=60))
    assert name == "learning_rate=3e-05 use_std_normalization=False"
    assert default_run_name(GRPOConfig(max_sampling_rounds=3)) == "max_sampling_rounds=3"


def test_comparison_takes_training_seconds_from_the_step_records_of_old_folders_too(tmp_path):
    folder = tmp_path / "lr=1e-5"
    folder.mkdir()
    old_row = {"run": "lr=1e-5", "steps": 2, "seconds": 0.5}  # "seconds": the last call's time only
    (folder / "grpo.json").write_text(json.dumps({"title": "t", "rows": [old_row]}))
    steps = [
        {"step": s, "phase": "grpo", **_step(False, 0.5, 0.2, 100, seconds)} for s, seconds in [(1, 2.0), (2, 3.0)]
    ]
    records = [{"step": 0, "val_reward": 0.0}, *steps]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = GRPOComparisonConfig(runs=[str(folder)], name="sweep", out_dir=str(tmp_path / "out"))
    (row,) = compare_grpo_runs(cfg)
    assert row == {"run": "lr=1e-5", "steps": 2, "train_seconds": 5.0}
    assert "| training seconds |" in (tmp_path / "out" / "sweep.md").read_text()
