"""Muon: momentum whose update is orthogonalised by a Newton–Schulz iteration, for the hidden weight matrices.

Muon (Keller Jordan et al., 2024; the optimizer of the modded-nanogpt speedruns) keeps SGD momentum per matrix
and replaces the update ``M`` by the nearest semi-orthogonal matrix ``U Vᵀ`` (from ``M = U S Vᵀ``), approximated
by five steps of a quintic Newton–Schulz iteration in bf16: every direction of the update then moves by the same
amount, whatever the gradient's conditioning. It is for 2-D weights inside the network; embeddings, the LM head
and gains are trained with AdamW. :class:`Muon` holds both kinds of parameter group (``use_muon``), so a run has
one optimizer and one state dict, as with :class:`~cs336_basics.optimizer.AdamW`.
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from cs336_basics.optimizer import adamw_step_

# Coefficients of the quintic x ← a·x + b·x³ + c·x⁵ applied to the singular values (Keller Jordan's tuning): it
# pushes every singular value in (0, 1] into roughly [0.7, 1.2] in five steps, fast rather than exactly to 1.
NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz_orthogonalize(
    matrices: Float[Tensor, "... rows cols"], steps: int = 5, eps: float = 1e-7
) -> Float[Tensor, "... rows cols"]:
    """Approximately ``U Vᵀ`` of each matrix (``M = U S Vᵀ``), batched over leading dimensions.

    Runs in bf16 on CUDA (tensor cores; the iteration tolerates it) and float32 elsewhere. The matrix is first
    scaled by its Frobenius norm, so every singular value starts in (0, 1]; a wide orientation keeps ``X Xᵀ``
    the smaller Gram matrix. Each step is three batched matmuls, the polynomial's sums fused into them
    (``baddbmm``): the optimizer step of a small model is bound by kernel launches, not FLOPs.
    """
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    x = matrices.to(torch.bfloat16 if matrices.is_cuda else torch.float32)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    batch_shape = x.shape[:-2]
    x = x.reshape(-1, *x.shape[-2:])
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)
        polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b·G + c·G²
        x = torch.baddbmm(x, polynomial, x, beta=a)  # a·X + (b·G + c·G²)·X
    x = x.reshape(*batch_shape, *x.shape[-2:])
    return x.mT if tall else x


@functools.cache
def compiled_newton_schulz(mode: str) -> Callable[[Tensor, int], Tensor]:
    """:func:`newton_schulz_orthogonalize` under ``torch.compile(mode=mode)``, specialised to each shape (an
    optimizer sees a fixed few); one per mode for the process, so every optimizer shares its compilations."""
    return torch.compile(newton_schulz_orthogonalize, mode=mode, dynamic=False)


def muon_param_groups(
    model: nn.Module, muon_lr: float, adam_lr: float, weight_decay: float = 0.0, adam_weight_decay: float = 0.0
) -> list[dict]:
    """Muon for every 2-D weight inside the residual blocks (``model.layers``); AdamW for the embedding, the LM
    head and the 1-D gains, which Muon's orthogonal update does not suit (a lookup table, a classifier)."""
    in_blocks = {id(p) for p in model.layers.parameters()} if hasattr(model, "layers") else set()
    hidden, other = [], []
    for p in model.parameters():
        if p.requires_grad:
            (hidden if p.ndim == 2 and id(p) in in_blocks else other).append(p)
    return [
        {"params": hidden, "use_muon": True, "lr": muon_lr, "weight_decay": weight_decay},
        {"params": other, "use_muon": False, "lr": adam_lr, "weight_decay": adam_weight_decay},
    ]


class Muon(torch.optim.Optimizer):
    """Muon for groups with ``use_muon=True``, AdamW for the others.

    Muon per matrix ``W`` (shape ``rows × cols``) with gradient ``g``: ``m ← β·m + (1−β)·g``; the update direction
    is ``g + β·(m − g)`` (Nesterov) or ``m``; ``W ← (1 − lr·λ)·W − lr·sqrt(max(1, rows/cols))·NS(direction)``.

    A step is a fixed handful of kernel launches, whatever the number of matrices (the step of a small model is
    bound by launches): momentum, decay and update are multi-tensor (``torch._foreach_*``) kernels over the whole
    group, and matrices of one shape up to transposition (a feed-forward's ``d_ff × d`` and ``d × d_ff``) are
    orthogonalised together as one batch. ``compile_mode`` (a ``torch.compile`` mode, e.g. ``"reduce-overhead"``
    for CUDA graphs) compiles the orthogonalisation for CUDA tensors, one graph per batch shape; it stays eager on
    other devices and after a failed compilation.
    """

    def __init__(
        self,
        params: Iterable[dict],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        compile_mode: str | None = None,
    ):
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"lr and weight_decay must be >= 0, got lr={lr}, weight_decay={weight_decay}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay,
            betas=betas, eps=eps, use_muon=True,
        )  # fmt: skip
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon groups take 2-D weight matrices only; give other tensors use_muon=False")
        self._compile_mode = compile_mode

    def __getstate__(self) -> dict:
        return super().__getstate__() | {"_compile_mode": self._compile_mode}  # copies and pickles keep it

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon_step if group["use_muon"] else self._adamw_step)(group, params)
        return loss

    def _muon_step(self, group: dict, params: list[Tensor]) -> None:
        beta, lr, decay = group["momentum"], group["lr"], group["weight_decay"]
        grads = [p.grad for p in params]
        buffers = [self._momentum_buffer(p) for p in params]
        torch._foreach_lerp_(buffers, grads, 1.0 - beta)
        directions = torch._foreach_lerp(grads, buffers, beta) if group["nesterov"] else buffers
        if decay:
            torch._foreach_mul_(params, 1.0 - lr * decay)
        if self._compile_mode is not None:  # CUDA graphs may reuse the last step's outputs: they are all consumed
            torch.compiler.cudagraph_mark_step_begin()
        # Batches keyed by the wide orientation's shape; in each, the wide (and square) matrices come first.
        batches: dict[tuple[int, int], tuple[list[Tensor], list[Tensor]]] = defaultdict(lambda: ([], []))
        for p, direction in sorted(zip(params, directions), key=lambda pair: pair[0].shape[0] > pair[0].shape[1]):
            rows, cols = p.shape
            batch = batches[(min(rows, cols), max(rows, cols))]
            batch[0].append(p)
            batch[1].append(direction if rows <= cols else direction.mT)
        updates_by_scale: dict[float, tuple[list[Tensor], list[Tensor]]] = defaultdict(lambda: ([], []))
        for (short, long), (members, oriented) in batches.items():
            orthogonal = self._orthogonalize(torch.stack(oriented), group["ns_steps"])
            wide = sum(p.shape[0] <= p.shape[1] for p in members)
            parts = ((slice(wide), orthogonal, 1.0), (slice(wide, None), orthogonal.mT, (long / short) ** 0.5))
            for part, updates, scale in parts:
                if members[part]:  # the updates copied into the parameters' dtype and layout, for the fused add
                    updates = updates[part].to(members[0].dtype, memory_format=torch.contiguous_format)
                    updates_by_scale[scale][0].extend(members[part])
                    updates_by_scale[scale][1].extend(updates.unbind(0))
        for scale, (members, updates) in updates_by_scale.items():
            torch._foreach_add_(members, updates, alpha=-lr * scale)

    def _momentum_buffer(self, p: Tensor) -> Tensor:
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p)
        return state["momentum_buffer"]

    def _orthogonalize(self, matrices: Tensor, steps: int) -> Tensor:
        if self._compile_mode is not None and matrices.is_cuda:
            try:
                return compiled_newton_schulz(self._compile_mode)(matrices, steps)
            except Exception as error:  # no Triton, no compiler: the eager iteration computes the same
                message = f"Muon: compiling the Newton–Schulz iteration failed ({error}); running it eagerly"
                warnings.warn(message, stacklevel=3)
                self._compile_mode = None
        return newton_schulz_orthogonalize(matrices, steps)

    def _adamw_step(self, group: dict, params: list[Tensor]) -> None:
        adamw_step_(self.state, params, group["lr"], group["betas"], group["eps"], group["weight_decay"])
