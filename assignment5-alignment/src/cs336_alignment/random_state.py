"""The random generators a resumed training loop must put back to repeat an uninterrupted run: its own
``random.Random`` (question sampling, rollout seeds, shuffles) and torch's CPU and CUDA generators (dropout)."""

from __future__ import annotations

import random

import torch


def capture_generators(rng: random.Random) -> tuple[tuple, torch.Tensor, list[torch.Tensor]]:
    """``(rng's state, torch's CPU state, torch's CUDA states)``; no CUDA states without a GPU."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return rng.getstate(), torch.get_rng_state(), cuda


def restore_generators(rng: random.Random, rng_state: tuple, torch_state: torch.Tensor, cuda: list[torch.Tensor]):
    """Undo to what :func:`capture_generators` returned."""
    rng.setstate(rng_state)
    torch.set_rng_state(torch_state)
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
