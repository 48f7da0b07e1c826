"""Helpers of the resume tests (GRPO and expert iteration): the metrics file, a reward that needs no grader, the
report without its seconds column, an optimiser that has taken a real step, and a save killed mid-write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from cs336_alignment.optim import clip_and_step, make_optimizer


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def odd_length_reward(response: str, truth: str) -> dict[str, float]:
    """1 for responses of odd length: a reward that varies across rollouts of a random tiny model."""
    reward = float(len(response) % 2)
    return {"reward": reward, "format_reward": 1.0, "answer_reward": reward}


def without_last_column(report) -> list[str]:
    """A markdown report's lines less the table's last column (the seconds, which differ run to run)."""
    return [line.rsplit("|", 2)[0] if line.startswith("|") else line for line in report.read_text().splitlines()]


def stepped_optimizer() -> tuple[torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """A real optimiser after one step, and the weights it moved."""
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model, 1e-2)
    model(torch.ones(1, 3)).sum().backward()
    clip_and_step(optimizer, 1.0)
    return optimizer, model.state_dict()


@contextmanager
def trainer_save_killed(monkeypatch) -> Iterator[None]:
    """``torch.save`` raising on the trainer file, as a process killed while writing a saved state; restored after."""
    real_save = torch.save

    def dies_on_the_trainer(value, f):
        if "trainer" in f.name:
            raise OSError("killed mid-write")
        real_save(value, f)

    monkeypatch.setattr(torch, "save", dies_on_the_trainer)
    try:
        yield
    finally:
        monkeypatch.setattr(torch, "save", real_save)
