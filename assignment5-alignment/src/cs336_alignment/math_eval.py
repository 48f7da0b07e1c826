"""Accuracy of a policy on math problems: generate, score with a verified reward, summarise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cs336_alignment.math_data import MathProblem, r1_zero_prompt
from cs336_alignment.rewards import RewardFn, r1_zero_reward_fn
from cs336_alignment.sampling.params import Sampler, SamplingParams

R1_ZERO_STOP = ("</answer>",)


def r1_zero_sampling(max_tokens: int, temperature: float = 0.0, n: int = 1, seed: int | None = None) -> SamplingParams:
    """The handout's generation settings: stop after ``</answer>`` and keep it, so the format can be graded."""
    return SamplingParams(
        temperature=temperature,
        top_p=1.0,
        max_tokens=max_tokens,
        stop=R1_ZERO_STOP,
        include_stop_str_in_output=True,
        n=n,
        seed=seed,
    )


@dataclass
class MathEvaluation:
    """Mean rewards over the problems and every generation with its scores (for a JSONL dump)."""

    metrics: dict[str, float]
    records: list[dict[str, Any]]


def evaluate_math(
    sampler: Sampler,
    problems: Sequence[MathProblem],
    params: SamplingParams,
    reward_fn: RewardFn = r1_zero_reward_fn,
    prompt_fn: Callable[[str], str] = r1_zero_prompt,
) -> MathEvaluation:
    """Generate one answer per problem (``params.n`` must be 1) and grade it against the problem's answer."""
    if params.n != 1:
        raise ValueError("evaluation takes one sample per problem (n=1)")
    if not problems:
        raise ValueError("no problems to evaluate")
    prompts = [prompt_fn(p.question) for p in problems]
    completions = sampler.generate(prompts, params)
    records = []
    for problem, prompt, completion in zip(problems, prompts, completions):
        scores = reward_fn(completion.text, problem.answer)
        records.append(
            {
                "question": problem.question,
                "prompt": prompt,
                "response": completion.text,
                "ground_truth": problem.answer,
                "response_tokens": len(completion.token_ids),
                **scores,
            }
        )
    count = len(records)
    metrics = {
        key: sum(r[key] for r in records) / count
        for key in ("reward", "format_reward", "answer_reward", "response_tokens")
    }
    return MathEvaluation(metrics, records)
