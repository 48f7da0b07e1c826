"""The reward must not be gameable: adversarial answers earn nothing, and each is graded within a fixed time.

Every adversarial case runs in a separate grading process (``grader_worker.py``) that is killed when one
grade takes longer than ``CASE_SECONDS``: generous next to the milliseconds a bounded case needs on a loaded
machine, and far below what the unbounded cases took before they were fixed (50,000 spaces: minutes of
quadratic backtracking; ``1e999999999``: a billion-digit float, no end in sight).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cs336_alignment.math_grader import grade

CASE_SECONDS = 5.0
STARTUP_SECONDS = 40.0
TRUTHS = ("18", "0", "-2.5", "\\frac{7}{2}")

# Answers that overflow to infinity (or are infinite) once beat every numeric truth: the tolerance scaled with
# the answer's own magnitude.
HUGE_OR_INFINITE = [
    "\\infty",
    "-\\infty",
    "oo",
    "10^{400}",
    "-10^{400}",
    "9^{999}",
    "1e400",
    "2^{2^{2^{2^{2}}}}",
    "(9^{999})^{999}",
    "\\exp(\\exp(\\exp(10)))",
    "\\frac{1}{0}",
    "\\frac{0}{0}",
    "\\log(0)",
    "\\tan(\\frac{\\pi}{2})",
]

ADVERSARIAL_ANSWERS = HUGE_OR_INFINITE + [
    "1e999999999",  # float literal whose digits would set a billion-digit precision
    "10^{10^{10}}",
    "9^{9^{9^{9}}}",
    "9^{999^{9}}",
    "e^{e^{e^{10}}}",
    "\\sin(10^{300})",
    "10^{-400}",
    "x^{x^{x^{x}}}",
    "7" + " " * 50_000 + "x",  # a run of spaces: quadratic backtracking in the unit-word pattern
    "x =" + " " * 50_000 + "7",
    " " * 50_000,
    "{" * 5_000 + "7" + "}" * 4_999,  # deep, unbalanced nesting
    "(" * 5_000 + "7" + ")" * 5_000,
    "\\sqrt{" * 2_000 + "2" + "}" * 2_000,
    "\\frac" * 5_000,
    "\\text{" * 3_000,
    "\\left(" * 3_000,
    "$" * 10_000,
    "1," * 20_000,
    "9" * 100_000,
    "\\frac{1}{2}" * 3_000,
]

UNBALANCED_BOXES = [
    "\\boxed{",
    "\\boxed{18",
    "\\boxed{" * 3_000 + "18",
    "\\boxed{18" + "}" * 0 + " and more text",
    "\\fbox{",
]


class GradingProcess:
    """The worker process, restarted after a case that had to be killed."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def _start(self) -> None:
        worker = Path(__file__).with_name("grader_worker.py")
        self._proc = subprocess.Popen(
            [sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._lines = queue.Queue()
        stdout = self._proc.stdout
        threading.Thread(target=lambda: [self._lines.put(line) for line in stdout], daemon=True).start()
        assert json.loads(self._lines.get(timeout=STARTUP_SECONDS)) == {"ready": True}

    def scores(self, reward: str, response: str, truth: str) -> dict[str, float] | None:
        """The reward's scores, or None when grading took longer than ``CASE_SECONDS`` (the process is killed)."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        self._proc.stdin.write(json.dumps({"reward": reward, "response": response, "truth": truth}) + "\n")
        self._proc.stdin.flush()
        try:
            return json.loads(self._lines.get(timeout=CASE_SECONDS))
        except queue.Empty:
            self.close()
            return None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@pytest.fixture(scope="module")
def grader():
    process = GradingProcess()
    yield process
    process.close()


def _short(answer: str) -> str:
    return answer if len(answer) < 40 else f"{answer[:20]}...({len(answer)} chars)"


@pytest.mark.parametrize("answer", HUGE_OR_INFINITE, ids=_short)
@pytest.mark.parametrize("truth", TRUTHS)
def test_huge_and_infinite_answers_match_no_finite_truth(answer, truth):
    assert not grade(answer, truth)


def test_exact_and_numeric_equality_still_hold():
    assert grade("\\infty", "\\infty")
    assert grade("10^{400}", "10^{400}")
    assert grade("(-\\infty, 5)", "(-\\infty,5)")
    assert grade("2\\pi", "6.283185307")
    assert grade("0.3333333", "\\frac{1}{3}")
    assert grade("9^{999}", "3^{1998}")
    assert not grade("10^{-400}", "0")  # exact numbers that differ get no tolerance


@pytest.mark.parametrize("answer", ADVERSARIAL_ANSWERS, ids=_short)
def test_adversarial_answer_earns_nothing_within_the_time_limit(grader, answer):
    for truth in TRUTHS:
        scores = grader.scores("r1_zero", f"I am sure. </think> <answer> {answer} </answer>", truth)
        assert scores is not None, f"grading took over {CASE_SECONDS} s against truth {truth}"
        assert scores["reward"] == 0.0, truth


@pytest.mark.parametrize("box", UNBALANCED_BOXES, ids=_short)
def test_unbalanced_box_earns_nothing_within_the_time_limit(grader, box):
    for reward, response in (("r1_zero", f"</think> <answer> {box} </answer>"), ("question_only", f"So {box}")):
        scores = grader.scores(reward, response, "18")
        assert scores is not None, f"{reward}: grading took over {CASE_SECONDS} s"
        assert scores["reward"] == 0.0, reward


def test_long_whitespace_around_a_right_answer_still_counts(grader):
    padding = " " * 50_000
    response = f"</think> <answer>{padding}18{padding}</answer>"
    assert grader.scores("r1_zero", response, "18") == {"format_reward": 1.0, "answer_reward": 1.0, "reward": 1.0}
    assert grader.scores("r1_zero", "</think> <answer> 18 </answer>", "18")["reward"] == 1.0
