"""Helpers for the multi-process tests: toy models, the course's DDP data, and running a check on 2 gloo ranks.

Named so it cannot collide with the acceptance suite's own `tests/common.py`.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo  # noqa: F401  (optimizers import it lazily, ~5 s; done once here, forked ranks inherit it)
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path
from cs336_systems.distributed_utils import spawn
from torch import nn

WORLD_SIZE = 2


class ToyNet(nn.Module):
    """Small MLP with every awkward case a wrapper must handle: a buffer used in forward, a weight used twice
    (one Parameter), a frozen bias, and a frozen parameter that forward never touches."""

    def __init__(self, in_features: int = 10, out_features: int = 5):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 16, bias=False)
        self.fc2 = nn.Linear(16, 16)
        self.fc2.bias.requires_grad_(False)
        self.fc3 = nn.Linear(16, 16, bias=False)
        self.fc3.weight = self.fc2.weight
        self.fc4 = nn.Linear(16, out_features)
        self.register_buffer("scale", torch.rand(16) + 0.5)
        self.unused_frozen = nn.Parameter(torch.randn(2), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x)) * self.scale
        x = torch.relu(self.fc2(x))
        x = torch.relu(self.fc3(x))
        return self.fc4(x)


def ddp_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The course's 20 x 10 inputs and 20 x 5 targets (skips the test when the shared fixtures are absent)."""
    try:
        data = torch.load(shared_path("fixtures/assignment2/ddp_test_data.pt"))
        labels = torch.load(shared_path("fixtures/assignment2/ddp_test_labels.pt"))
    except SharedDataUnavailable as err:
        pytest.skip(str(err))
    return data, labels


def run_on_ranks(fn, *args, world_size: int = WORLD_SIZE) -> None:
    """Run `fn(ctx, *args)` on `world_size` gloo CPU processes; an assertion in any rank fails the test."""
    spawn(fn, world_size, *args, backend="gloo", start_method="fork")


def model_lm_available() -> bool:
    try:
        from cs336_basics.model import TransformerLM  # noqa: F401
    except ImportError:
        return False
    return True
