"""The course's distributed test models, rebuilt from the spec: shared by our tests and the multi-GPU checks.

`CourseToyModel` has a frozen bias and an unused frozen parameter; `CourseTiedModel` uses one weight in two
layers; `CourseFsdpModel` is the 2026 FSDP test's model built from the assignment-1 layers.
"""

from __future__ import annotations

import torch
from torch import nn


class _FrozenBiasLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 50)
        self.fc.bias.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class CourseToyModel(nn.Module):
    """10 -> 10 -> 50 -> 5 MLP; `fc2.fc.bias` and `no_grad_fixed_param` are frozen (the latter unused)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 10, bias=False)
        self.fc2 = _FrozenBiasLinear()
        self.fc3 = nn.Linear(50, 5, bias=False)
        self.no_grad_fixed_param = nn.Parameter(torch.tensor([2.0, 2.0]), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class CourseTiedModel(nn.Module):
    """Five bias-free layers 10 -> 10 -> 50 -> 10 -> 50 -> 5 with `fc4.weight is fc2.weight`."""

    def __init__(self):
        super().__init__()
        sizes = [10, 10, 50, 10, 50, 5]
        for i, (d_in, d_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            setattr(self, f"fc{i}", nn.Linear(d_in, d_out, bias=False))
        self.fc4.weight = self.fc2.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        return self.fc5(x)


class CourseFsdpModel(nn.Module):
    """embedding -> norm1 -> linear1 -> relu -> norm2 -> linear2 -> lm_head, from `cs336_basics.model`."""

    def __init__(self):
        super().__init__()
        from cs336_basics.model import Embedding, Linear, RMSNorm

        self.embedding = Embedding(100, 64)
        self.norm1 = RMSNorm(64)
        self.linear1 = Linear(64, 128)
        self.norm2 = RMSNorm(128)
        self.linear2 = Linear(128, 64)
        self.lm_head = Linear(64, 100)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.norm2(torch.relu(self.linear1(self.norm1(self.embedding(ids)))))
        return self.lm_head(self.linear2(h))

    def mixed_precision_forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The single-process meaning of FSDP's `compute_dtype`: Linear/Embedding weights (and so the
        activations they produce) in `dtype`, norms in fp32 and cast back, master weights untouched."""
        h = self.norm1(self.embedding.weight.to(dtype)[ids])
        h = self.norm2(torch.relu(h @ self.linear1.weight.to(dtype).T))
        return (h @ self.linear2.weight.to(dtype).T) @ self.lm_head.weight.to(dtype).T
