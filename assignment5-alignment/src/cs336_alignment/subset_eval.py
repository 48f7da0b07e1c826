"""Evaluation on the fixed GSM8K test subset that every experiment shares.

Intermediate validations (during SFT, expert iteration, GRPO) use the subset's first ``val_size`` problems,
a random sample of it, to keep them cheap; final numbers use the whole subset, so every experiment's final
accuracy is measured on the same problems and two of them can be compared problem by problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cs336_alignment.math_data import MathProblem, gsm8k_test_subset
from cs336_alignment.math_eval import MathEvaluation, PromptStyle, evaluate_math, prompt_style
from cs336_alignment.sampling.params import Sampler


@dataclass
class SubsetEvaluation:
    """Evaluation of a sampler's policy on fixed problems (``indices`` into GSM8K test), greedy unless a run
    asks for a temperature."""

    sampler: Sampler
    indices: list[int]
    problems: list[MathProblem]
    style: PromptStyle
    max_tokens: int
    val_size: int

    @classmethod
    def gsm8k(
        cls, sampler: Sampler, size: int, seed: int, val_size: int, max_tokens: int, prompt: str = "r1_zero"
    ) -> SubsetEvaluation:
        if not 0 < val_size <= size:
            raise ValueError(f"val_size must be in 1..{size} (the subset size), got {val_size}")
        indices, problems = gsm8k_test_subset(size, seed)
        return cls(sampler, indices, problems, prompt_style(prompt), max_tokens, val_size)

    def run(self, limit: int | None = None, temperature: float = 0.0, seed: int | None = None) -> MathEvaluation:
        """Generate (top-p 1; ``seed`` fixes the draws above temperature 0) and grade the first ``limit`` problems
        (all by default); records carry their test index."""
        count = len(self.problems) if limit is None else limit
        result = evaluate_math(
            self.sampler,
            self.problems[:count],
            self.style.sampling(self.max_tokens, temperature, seed=seed),
            self.style.reward_fn,
            self.style.prompt_fn,
        )
        for index, record in zip(self.indices, result.records):
            record["test_index"] = index
        return result

    def validate(self) -> dict[str, Any]:
        """Mean rewards on the first ``val_size`` problems, keys prefixed ``val_``."""
        return {f"val_{k}": v for k, v in self.run(self.val_size).metrics.items()}
