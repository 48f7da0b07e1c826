"""MMLU prompts and scoring, instruction-eval output files, and metric plots."""

import json

import pytest
from cs336_alignment.instruction_eval import alpaca_eval_records
from cs336_alignment.mmlu import MMLUExample, load_mmlu, mmlu_prompt, score_mmlu
from cs336_alignment.plots import plot_metrics
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.data_paths import SharedDataUnavailable

EXAMPLES = [
    MMLUExample("astronomy", "Closest star?", ("Sun", "Vega", "Sirius", "Rigel"), "A"),
    MMLUExample("astronomy", "Red planet?", ("Venus", "Mars", "Jupiter", "Saturn"), "B"),
    MMLUExample("astronomy", "Largest planet?", ("Venus", "Mars", "Jupiter", "Saturn"), "C"),
]


def test_mmlu_scoring_counts_correct_and_unparsed():
    metrics, records = score_mmlu(EXAMPLES, ["The correct answer is A.", "The correct answer is C.", "No idea"])
    assert metrics == pytest.approx({"accuracy": 1 / 3, "unparsed": 1 / 3})
    assert [r["parsed"] for r in records] == ["A", "C", None]


def test_mmlu_prompt_lists_the_options_in_the_system_prompt():
    try:
        prompt = mmlu_prompt(EXAMPLES[1])
        dev = load_mmlu("dev")
    except SharedDataUnavailable as err:
        pytest.skip(str(err))
    assert "# Query:" in prompt and "A. Venus\nB. Mars\nC. Jupiter\nD. Saturn" in prompt
    assert "about astronomy" in prompt
    assert len(dev) == 57 * 5 and {e.answer for e in dev} == set("ABCD")


def test_alpaca_eval_file_has_the_fields_the_judge_reads(tmp_path):
    records = alpaca_eval_records([{"instruction": "Hi", "dataset": "x"}], ["Hello"], "me")
    path = write_json_atomic(tmp_path / "out" / "alpaca_eval.json", records)
    assert json.loads(path.read_text()) == [{"instruction": "Hi", "output": "Hello", "generator": "me", "dataset": "x"}]


def test_plot_metrics_writes_a_png(tmp_path):
    records = [{"step": i, "train_reward": i / 10} for i in range(5)] + [{"step": 5, "val_reward": 0.3}]
    path = plot_metrics(records, ["train_reward", "val_reward"], tmp_path / "p.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]
