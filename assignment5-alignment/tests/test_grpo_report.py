"""A GRPO run's summary row: accuracies, the paired change, the no-signal diagnostics and the training time from
hand-made records; a comparison of run folders, old ones included, at equal steps; SFT and expert-iteration folders
merged."""

import json

import pytest
from cs336_alignment.experiments.configs import RunComparisonConfig
from cs336_alignment.experiments.ei_comparison import compare_ei_runs
from cs336_alignment.experiments.grpo_comparison import compare_grpo_runs
from cs336_alignment.experiments.sft_comparison import compare_sft_runs
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
    cfg = RunComparisonConfig(runs=[str(folder)], name="sweep", out_dir=str(tmp_path / "out"))
    (row,) = compare_grpo_runs(cfg)
    assert row == {"run": "lr=1e-5", "steps": 2, "train_seconds": 5.0}
    assert "| training seconds |" in (tmp_path / "out" / "sweep.md").read_text()


def _write_run(folder, summary_name, rows, records):
    folder.mkdir()
    (folder / summary_name).write_text(json.dumps({"title": "t", "rows": rows}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(folder)


def test_comparison_at_a_step_averages_the_evaluations_of_the_last_30_steps_before_it(tmp_path):
    vals = {0: 0.10, 60: 0.50, 70: 0.20, 80: 0.30, 100: 0.40, 110: 0.90}  # 70..100 count: (0.2+0.3+0.4)/3 = 0.3
    records = [{"step": s, "val_reward": v} for s, v in vals.items()]
    run = _write_run(tmp_path / "a", "grpo.json", [{"run": "a", "steps": 110}], records)
    cfg = RunComparisonConfig(runs=[run], name="cmp", out_dir=str(tmp_path / "out"), at_step=100)
    (row,) = compare_grpo_runs(cfg)
    assert row["val_at_step"] == pytest.approx(0.3)
    assert row["val_change_at_step"] == pytest.approx(0.2)
    assert "| validation, steps 70-100 | its change from step 0 |" in (tmp_path / "out" / "cmp.md").read_text()
    short = _write_run(tmp_path / "b", "grpo.json", [{"run": "b", "steps": 50}], records[:2])
    with pytest.raises(ValueError, match="none at steps 70-100"):
        compare_grpo_runs(RunComparisonConfig(runs=[short], name="cmp", out_dir=str(tmp_path / "out"), at_step=100))


def test_comparison_at_an_early_step_leaves_step_0_out_of_the_mean_it_compares_with_step_0(tmp_path):
    records = [{"step": s, "val_reward": v} for s, v in {0: 0.10, 10: 0.30, 20: 0.50}.items()]
    run = _write_run(tmp_path / "a", "grpo.json", [{"run": "a", "steps": 20}], records)
    (row,) = compare_grpo_runs(RunComparisonConfig(runs=[run], name="cmp", out_dir=str(tmp_path / "out"), at_step=10))
    assert row["val_at_step"] == pytest.approx(0.3)
    assert row["val_change_at_step"] == pytest.approx(0.2)
    assert "| validation, steps 1-10 |" in (tmp_path / "out" / "cmp.md").read_text()


def test_sft_folders_merge_by_dataset_size_then_steps_with_one_curve_each(tmp_path):
    def sft_run(name, size, steps):
        records = [
            {"step": 0, "train_size": size, "val_reward": 0.0},
            {"step": steps, "train_size": size, "nll_per_token": 0.5},
        ]
        return _write_run(tmp_path / name, "sft_experiment.json", [{"train_size": size, "steps": steps}], records)

    runs = [sft_run("all_700", 7473, 700), sft_run("s128", 128, 200), sft_run("all_200", 7473, 200)]
    rows = compare_sft_runs(RunComparisonConfig(runs=runs, name="sweep", out_dir=str(tmp_path / "out")))
    assert [(r["train_size"], r["steps"]) for r in rows] == [(128, 200), (7473, 200), (7473, 700)]
    table = (tmp_path / "out" / "sweep.md").read_text()
    assert table.index("| 128 | 200 |") < table.index("| 7473 | 200 |") < table.index("| 7473 | 700 |")
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="sft_experiment.json is missing"):
        compare_sft_runs(RunComparisonConfig(runs=[str(tmp_path / "out")], name="x", out_dir=str(tmp_path / "o2")))


def test_expert_iteration_folders_merge_in_order_with_one_curve_per_setting(tmp_path):
    def ei_run(name, setting, steps):
        records = [
            {"step": 0, "setting": setting, "ei_round": 0, "val_reward": 0.1},
            {"step": 0, "setting": setting, "phase": "ei_rollout", "ei_round": 1, "rollout_reward": 0.05},
            *({"step": s, "setting": setting, "phase": "sft", "entropy": 0.6, "ei_round": 1} for s in range(1, steps)),
            {"step": steps, "setting": setting, "phase": "sft", "entropy": 0.5, "val_reward": 0.2, "ei_round": 1},
        ]
        row = {"setting": setting, "sft_steps": steps, "reward": "0.2 [0.1, 0.3]"}
        return _write_run(tmp_path / name, "expert_iteration_experiment.json", [row], records)

    runs = [ei_run("ei_8x1", "8x1", 4), ei_run("ei_4x1", "4x1", 2)]
    rows = compare_ei_runs(RunComparisonConfig(runs=runs, name="ei", out_dir=str(tmp_path / "out")))
    assert [r["setting"] for r in rows] == ["8x1", "4x1"]
    table = (tmp_path / "out" / "ei.md").read_text()
    assert "| G x rounds |" in table and table.index("| 8x1 |") < table.index("| 4x1 |")
    assert (tmp_path / "out" / "ei.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="expert_iteration_experiment.json is missing"):
        compare_ei_runs(RunComparisonConfig(runs=[str(tmp_path / "out")], name="x", out_dir=str(tmp_path / "o2")))
