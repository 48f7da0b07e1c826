"""The answer grader and r1_zero reward on hand-written equivalent and non-equivalent answer pairs."""

import pytest
from cs336_alignment.math_grader import grade
from cs336_alignment.rewards import question_only_reward_fn, r1_zero_reward_fn

EQUIVALENT = [
    ("18", "18"),
    ("18.0", "18"),
    ("\\frac{1}{2}", "0.5"),
    ("1/2", "\\frac{1}{2}"),
    ("\\dfrac{3}{4}", "\\frac34"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\$5", "5"),
    ("5 \\text{ dollars}", "5"),
    ("1,000", "1000"),
    ("x^2+2x+1", "(x+1)^2"),
    ("(1, 2)", "(1,2)"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("[2, 5)", "[2,5)"),
    ("10\\%", "10"),
    ("\\boxed{7}", "7"),
    ("90^\\circ", "90"),
    ("-3", "-3.0"),
    ("\\pi", "\\pi"),
    ("2\\pi", "6.283185307"),
]

NOT_EQUIVALENT = [
    ("17", "18"),
    ("0.51", "\\frac{1}{2}"),
    ("(1, 2)", "[1, 2]"),
    ("(1, 2)", "(2, 1)"),
    ("1, 2, 3", "1, 2"),
    ("x^2", "x^3"),
    ("\\sqrt{2}", "2"),
    ("", "0"),
    ("-5", "5"),
    ("12", "1,2"),
]


@pytest.mark.parametrize(("given", "truth"), EQUIVALENT)
def test_equivalent_answers_are_accepted(given, truth):
    assert grade(given, truth), (given, truth)


@pytest.mark.parametrize(("given", "truth"), NOT_EQUIVALENT)
def test_different_answers_are_rejected(given, truth):
    assert not grade(given, truth), (given, truth)


def test_untrusted_expressions_never_reach_eval():
    assert not grade("__import__('os').system('echo')", "0")
    assert not grade("2**999999999", "1")


def test_r1_zero_reward_needs_format_and_answer():
    good = "2 + 3 = 5 </think> <answer> 5 </answer>"
    assert r1_zero_reward_fn(good, "5") == {"format_reward": 1.0, "answer_reward": 1.0, "reward": 1.0}
    assert r1_zero_reward_fn(good, "6") == {"format_reward": 1.0, "answer_reward": 0.0, "reward": 0.0}
    assert r1_zero_reward_fn("the answer is 5", "5")["reward"] == 0.0
    assert r1_zero_reward_fn("</think> <answer> \\boxed{\\frac{10}{2}} </answer>", "5")["reward"] == 1.0
    assert r1_zero_reward_fn("reasoning </think> <answer> 5", "5")["format_reward"] == 0.0
    assert r1_zero_reward_fn("x </think> <answer> 4 </answer>", ["3", "4"])["reward"] == 1.0


def test_question_only_reward_uses_last_box():
    assert question_only_reward_fn("so \\boxed{3} then \\boxed{4}", "4")["reward"] == 1.0
    assert question_only_reward_fn("no box here: 4", "4")["format_reward"] == 0.0


def test_distinct_integer_literals_are_unequal_without_sympy_and_sympy_agrees(monkeypatch):
    """Most wrong GSM8K answers are one integer against another: the grader decides those without parsing, and
    the answer is the one ``sympy`` gives (checked here on the same pairs through the sympy path)."""
    from cs336_alignment import math_grader

    pairs = [("18", "17"), ("0", "-1"), ("-5", "5"), ("100", "1000"), ("123456789012345678", "123456789012345679")]
    assert all(not math_grader._sympy_equal(truth, given) for truth, given in pairs)
    equal_through_sympy = [("0", "-0"), ("18", "+18"), ("20", "20.0"), ("1000", "1e3")]
    assert all(math_grader._sympy_equal(truth, given) for truth, given in equal_through_sympy)

    asked = []
    real = math_grader._sympy_equal
    monkeypatch.setattr(math_grader, "_sympy_equal", lambda t, g: asked.append((t, g)) or real(t, g))
    assert not any(grade(given, truth) for truth, given in pairs)
    assert asked == []
    # non-canonical spellings of the same integer still reach sympy, and are equal
    assert all(math_grader._element_equal(truth, given) for truth, given in equal_through_sympy)
    assert asked == equal_through_sympy
