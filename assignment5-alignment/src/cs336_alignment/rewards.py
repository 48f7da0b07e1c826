"""Verified rewards: plain callables ``(response, ground_truth) -> {"format_reward", "answer_reward", "reward"}``.

``r1_zero_reward_fn`` is strict about the R1-Zero format on purpose (the response continues a prompt
that ends in ``<think>``): a formatted but wrong answer keeps format reward 1 and reward 0, so the
model cannot earn reward by formatting alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cs336_alignment.math_answer import last_boxed_content
from cs336_alignment.math_grader import grade

RewardFn = Callable[[str, str], dict[str, float]]


def _scores(format_ok: bool, answer_ok: bool) -> dict[str, float]:
    return {
        "format_reward": float(format_ok),
        "answer_reward": float(answer_ok),
        "reward": float(format_ok and answer_ok),
    }


def _matches_any(answer: str, ground_truth: str | float | int | Sequence[str], fast: bool) -> bool:
    truths = [ground_truth] if isinstance(ground_truth, (str, int, float)) else list(ground_truth)
    return any(grade(answer, str(truth), fast) for truth in truths)


def r1_zero_reward_fn(
    response: str, ground_truth: str | float | int | Sequence[str], fast: bool = True
) -> dict[str, float]:
    r"""Format: ``... </think> <answer> ... </answer>``; answer: the ``\boxed{}`` content if any, else the tag text."""
    if "</think> <answer>" not in response or "</answer>" not in response:
        return _scores(False, False)
    answer = response.split("<answer>")[-1].replace("</answer>", "")
    if "\\boxed" in answer:
        boxed = last_boxed_content(answer)
        if boxed is None:
            return _scores(True, False)
        answer = boxed
    return _scores(True, _matches_any(answer, ground_truth, fast))


def question_only_reward_fn(
    response: str, ground_truth: str | float | int | Sequence[str], fast: bool = True
) -> dict[str, float]:
    r"""For the bare ``{question}`` prompt: the answer is the last ``\boxed{}``; format means one exists."""
    answer = last_boxed_content(response)
    if answer is None:
        return _scores(False, False)
    return _scores(True, _matches_any(answer, ground_truth, fast))
