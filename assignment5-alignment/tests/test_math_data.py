"""Problem sources: procedural word problems checked by re-doing their arithmetic, GSM8K parsing, MATH JSONL."""

import json
import re
from pathlib import Path

import pytest
from cs336_alignment.math_data import (
    arithmetic_word_problems,
    gsm8k_test_subset,
    gsm8k_test_subset_indices,
    load_gsm8k,
    r1_zero_target,
)
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_setup import load_math_jsonl
from cs336_basics.toolkit.data_paths import SharedDataUnavailable

_EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def test_procedural_solutions_are_correct_arithmetic_and_end_in_the_answer():
    problems = arithmetic_word_problems(400, seed=5, max_number=30)
    assert len({p.question for p in problems}) > 350
    for p in problems:
        equations = _EQUATION.findall(p.solution)
        assert equations, p.solution
        for a, op, b, result in equations:
            assert _OPS[op](int(a), int(b)) == int(result), p.solution
        assert equations[-1][3] == p.answer and int(p.answer) >= 0
        assert r1_zero_reward_fn(r1_zero_target(p), p.answer)["reward"] == 1.0
    assert arithmetic_word_problems(5, 1) == arithmetic_word_problems(5, 1) != arithmetic_word_problems(5, 2)


def test_gsm8k_answers_and_solutions():
    try:
        test = load_gsm8k("test")
    except SharedDataUnavailable as err:
        pytest.skip(str(err))
    assert len(test) == 1319
    assert test[0].answer == "18" and "<<" not in test[0].solution and "####" not in test[0].solution
    assert all(re.fullmatch(r"-?[\d.]+", p.answer) for p in test)


def test_math_jsonl_takes_answers_or_boxed_solutions(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [{"problem": "1+1?", "answer": "2"}, {"question": "Half?", "solution": "It is $\\boxed{\\frac12}$."}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    problems = load_math_jsonl(path)
    assert [(p.question, p.answer) for p in problems] == [("1+1?", "2"), ("Half?", "\\frac12")]
    path.write_text(json.dumps({"problem": "no answer"}))
    with pytest.raises(ValueError, match="record 1"):
        load_math_jsonl(path)


def test_the_fixed_gsm8k_subset_is_the_committed_one():
    committed = json.loads((Path(__file__).resolve().parents[1] / "results/gsm8k_test_subset_500.json").read_text())
    assert gsm8k_test_subset_indices(500, 0) == committed["indices"]
    assert len(set(committed["indices"])) == 500 and max(committed["indices"]) < 1319


def test_the_whole_test_set_starts_with_the_fixed_subset():
    """A run evaluated on all 1,319 problems reports the 500-problem subset as its prefix, so its numbers compare."""
    whole = gsm8k_test_subset_indices(1319, 0)
    assert sorted(whole) == list(range(1319))
    assert whole[:500] == gsm8k_test_subset_indices(500, 0)  # validation reads the first 200 of either


def test_the_fixed_subset_loads_the_indexed_test_problems():
    try:
        test = load_gsm8k("test")
    except SharedDataUnavailable as err:
        pytest.skip(str(err))
    indices, problems = gsm8k_test_subset(20, 0)
    assert problems == [test[i] for i in indices] and indices == gsm8k_test_subset_indices(20, 0)
