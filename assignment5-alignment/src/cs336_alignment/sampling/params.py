"""What every generation backend takes and returns, and the protocol they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch


@dataclass(frozen=True)
class SamplingParams:
    """vLLM-style sampling settings. ``temperature == 0`` is greedy; ``n`` samples per prompt come out
    consecutively; ``stop`` strings end a sample (kept in the text when ``include_stop_str_in_output``)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = True
    n: int = 1
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.max_tokens < 1 or not 0 <= self.min_tokens <= self.max_tokens or self.n < 1:
            raise ValueError(f"bad lengths: max_tokens={self.max_tokens} min_tokens={self.min_tokens} n={self.n}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    """One sampled continuation: its text, generated token ids and why it ended."""

    prompt: str
    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: Literal["stop", "length"] = "length"


class Sampler(Protocol):
    """A generation backend: our KV-cache sampler (HF or cs336_basics models) or vLLM."""

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """``len(prompts) * params.n`` completions, prompt-major (the ``n`` of a prompt are adjacent)."""
        ...

    def sync_weights(self, policy: torch.nn.Module) -> None:
        """Make the sampler generate from ``policy``'s current weights."""
        ...
