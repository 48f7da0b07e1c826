"""Accuracy of a policy on math problems: generate, score with a verified reward, summarise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cs336_alignment.intervals import Estimate, accuracy
from cs336_alignment.math_data import MathProblem, r1_zero_prompt
from cs336_alignment.prompts import load_prompt
from cs336_alignment.rewards import RewardFn, question_only_reward_fn, r1_zero_reward_fn
from cs336_alignment.sampling.params import Sampler, SamplingParams

R1_ZERO_STOP = ("</answer>",)


def question_only_prompt(question: str) -> str:
    """The bare question (the handout's ``question_only`` template); the answer is the last ``\\boxed{}``."""
    return load_prompt("question_only").format(question=question)


@dataclass(frozen=True)
class PromptStyle:
    """A prompt template with the reward that grades its responses and the stop strings that end them."""

    name: str
    prompt_fn: Callable[[str], str]
    reward_fn: RewardFn
    stop: tuple[str, ...]

    def sampling(
        self, max_tokens: int, temperature: float = 0.0, n: int = 1, seed: int | None = None
    ) -> SamplingParams:
        """Top-p 1 sampling (greedy at temperature 0) that stops at, and keeps, the style's stop strings."""
        return SamplingParams(
            temperature=temperature,
            max_tokens=max_tokens,
            stop=self.stop,
            include_stop_str_in_output=True,
            n=n,
            seed=seed,
        )


PROMPT_STYLES = {
    "r1_zero": PromptStyle("r1_zero", r1_zero_prompt, r1_zero_reward_fn, R1_ZERO_STOP),
    "question_only": PromptStyle("question_only", question_only_prompt, question_only_reward_fn, ()),
}


def r1_zero_sampling(max_tokens: int, temperature: float = 0.0, n: int = 1, seed: int | None = None) -> SamplingParams:
    """The handout's generation settings: stop after ``</answer>`` and keep it, so the format can be graded."""
    return PROMPT_STYLES["r1_zero"].sampling(max_tokens, temperature, n, seed)


def prompt_style(name: str) -> PromptStyle:
    if name not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt {name!r}; expected one of {sorted(PROMPT_STYLES)}")
    return PROMPT_STYLES[name]


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
                "finish_reason": completion.finish_reason,
                **scores,
            }
        )
    return MathEvaluation(mean_metrics(records), records)


def mean_metrics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean reward, format reward, answer reward and response length of graded records."""
    return {
        key: sum(r[key] for r in records) / len(records)
        for key in ("reward", "format_reward", "answer_reward", "response_tokens")
    }


OUTCOMES = {
    "correct": (1.0, 1.0),
    "formatted_wrong_answer": (1.0, 0.0),
    "unformatted": (0.0, 0.0),
    "unformatted_right_answer": (0.0, 1.0),
}


def outcome(record: dict[str, Any]) -> str:
    """The handout's breakdown of one graded response: by format reward, then answer reward."""
    pair = (record["format_reward"], record["answer_reward"])
    return next(name for name, scores in OUTCOMES.items() if scores == pair)


def accuracy_estimates(records: Sequence[dict[str, Any]]) -> dict[str, Estimate]:
    """Reward, format reward and answer reward with 95% Wilson intervals."""
    return {key: accuracy([r[key] for r in records]) for key in ("reward", "format_reward", "answer_reward")}


def summarize_evaluation(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracies with intervals, outcome counts, the share of responses cut by the length limit, mean length."""
    if not records:
        raise ValueError("no evaluation records")
    summary: dict[str, Any] = {k: e.as_dict() for k, e in accuracy_estimates(records).items()}
    summary.update({name: sum(outcome(r) == name for r in records) for name in OUTCOMES})
    summary["truncated"] = sum(r.get("finish_reason") == "length" for r in records) / len(records)
    summary["response_tokens"] = sum(r["response_tokens"] for r in records) / len(records)
    summary["n"] = len(records)
    return summary


def failure_examples(records: Sequence[dict[str, Any]], per_outcome: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``per_outcome`` responses of each failing outcome, in evaluation order."""
    failures: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        name = outcome(record)
        if name != "correct" and len(failures.setdefault(name, [])) < per_outcome:
            failures[name].append(record)
    return failures
