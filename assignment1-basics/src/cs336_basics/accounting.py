"""Closed-form parameter, FLOP and memory counts of a :class:`~cs336_basics.model.TransformerLM` and its training.

FLOPs of the model count matrix multiplies only (2 per multiply-add), which dominate: RMSNorm, SiLU, softmax and
RoPE are O(seq · d_model) and ignored. Attention scores and the weighted sum over values are counted over the full
``seq × seq`` square, as dense kernels compute them (the causal half is not skipped). The AdamW update is
element-wise and counted per parameter. Training memory follows the handout's adamwAccounting: parameters,
gradients, two AdamW moments and the activations it lists, all float32 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from cs336_basics.model_config import ModelConfig


def count_parameters(cfg: ModelConfig, include_embeddings: bool = True) -> int:
    """Number of trainable parameters; ``include_embeddings=False`` drops the token-embedding table (a lookup,
    no FLOPs). The untied LM head is a real matmul and always counts."""
    d, f, v = cfg.d_model, cfg.d_ff, cfg.vocab_size
    ffn_matrices = 3 if cfg.ffn == "swiglu" else 2
    gains = 2 * d if cfg.norm != "none" else 0
    qk_gains = 2 * (d // cfg.num_heads) if cfg.qk_norm else 0
    per_layer = 4 * d * d + ffn_matrices * d * f + gains + qk_gains  # attention, feed-forward, RMSNorm gains
    total = cfg.num_layers * per_layer + (d if cfg.norm == "pre" else 0) + v * d  # final RMSNorm + LM head
    return total + (v * d if include_embeddings else 0)


@dataclass(frozen=True)
class Matmul:
    """One matrix multiply of the forward pass: ``(m × n) @ (n × p)``, run ``count`` times (layers × heads)."""

    component: str
    description: str
    m: int
    n: int
    p: int
    count: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.p * self.count


def forward_matmuls(cfg: ModelConfig, seq_len: int) -> list[Matmul]:
    """Every matrix multiply of one forward pass over one sequence of ``seq_len`` tokens, in execution order."""
    d, f, v, n, s, h = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers, seq_len, cfg.num_heads
    ffn = [
        Matmul("ffn", "W1: hidden pre-activation", s, d, f, n),
        *([Matmul("ffn", "W3: gate (SwiGLU)", s, d, f, n)] if cfg.ffn == "swiglu" else []),
        Matmul("ffn", "W2: back to d_model", s, f, d, n),
    ]
    return [
        *(Matmul("attention_qkv_projections", f"{x} projection", s, d, d, n) for x in ("Q", "K", "V")),
        Matmul("attention_scores", "Q Kᵀ per head", s, d // h, s, n * h),
        Matmul("attention_weighted_values", "softmax(scores) V per head", s, s, d // h, n * h),
        Matmul("attention_output_projection", "output projection", s, d, d, n),
        *ffn,
        Matmul("lm_head", "LM head: logits", s, d, v, 1),
    ]


def forward_flops_breakdown(cfg: ModelConfig, seq_len: int) -> dict[str, int]:
    """Matmul FLOPs of one forward pass over one sequence of ``seq_len`` tokens, by component (all layers).

    Attention scores and the weighted sum are each ``2 · s · s · d`` per layer (summed over heads)."""
    breakdown: dict[str, int] = {}
    for matmul in forward_matmuls(cfg, seq_len):
        breakdown[matmul.component] = breakdown.get(matmul.component, 0) + matmul.flops
    return breakdown


def forward_flops(cfg: ModelConfig, seq_len: int) -> int:
    """Total matmul FLOPs of one forward pass over one sequence of ``seq_len`` tokens."""
    return sum(forward_flops_breakdown(cfg, seq_len).values())


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per trained token: backward costs twice the forward (grads of inputs and weights)."""
    return 3 * forward_flops(cfg, seq_len) / seq_len


# Memory and compute of training with AdamW (the handout's adamwAccounting). Every tensor is float32 by default.
FLOAT32_BYTES = 4
# One AdamW update per parameter in the handout's form (the bias corrections are scalars, once per step):
# m ← β₁m + (1−β₁)g: 3;  v ← β₂v + (1−β₂)g²: 4;  θ ← θ − αₜ·m/(√v + ε): 5;  θ ← θ − αλθ: 2.
ADAMW_FLOPS_PER_PARAMETER = 14
# Feed-forward values kept per token per layer, in units of d_ff: W1 output and activation (+ W3 output and the
# gated product for SwiGLU); the W2 output (d_model wide) comes on top.
_FFN_HIDDEN_VALUES = {"swiglu": 4, "silu": 2, "relu2": 2}


def _checked_shape(cfg: ModelConfig, batch_size: int, seq_len: int | None) -> int:
    seq_len = cfg.context_length if seq_len is None else seq_len
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got batch_size={batch_size}, seq_len={seq_len}")
    return seq_len


def activation_elements(cfg: ModelConfig, batch_size: int, seq_len: int | None = None) -> dict[str, int]:
    """Activation values kept for the backward pass, by component (all layers), counted as the handout does.

    Per layer: the RMSNorm outputs (and normalised Q, K with QK-norm); Q, K, V; the ``heads × s × s`` scores and
    their softmax; the weighted sum of values; the output projection; the feed-forward's hidden values and its
    output. Then the final RMSNorm, the logits and the cross-entropy's softmax (``vocab_size`` per token each).
    ``seq_len`` defaults to the context length.
    """
    s = _checked_shape(cfg, batch_size, seq_len)
    d, f, v, n, h, tokens = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers, cfg.num_heads, batch_size * s
    norms_per_layer = (2 if cfg.norm != "none" else 0) + (2 if cfg.qk_norm else 0)
    return {
        "rmsnorm": n * norms_per_layer * tokens * d,
        "attention_qkv": n * 3 * tokens * d,
        "attention_scores": n * batch_size * h * s * s,
        "attention_softmax": n * batch_size * h * s * s,
        "attention_weighted_values": n * tokens * d,
        "attention_output_projection": n * tokens * d,
        "ffn": n * (_FFN_HIDDEN_VALUES[cfg.ffn] * tokens * f + tokens * d),
        "final_rmsnorm": tokens * d if cfg.norm == "pre" else 0,
        "lm_head_logits": tokens * v,
        "cross_entropy_softmax": tokens * v,
    }


def adamw_memory_bytes(
    cfg: ModelConfig, batch_size: int, seq_len: int | None = None, bytes_per_value: int = FLOAT32_BYTES
) -> dict[str, int]:
    """Peak training memory with AdamW: parameters, gradients, two moments per parameter, activations, total."""
    p = count_parameters(cfg)
    parts = {
        "parameters": p * bytes_per_value,
        "gradients": p * bytes_per_value,
        "optimizer_state": 2 * p * bytes_per_value,
        "activations": sum(activation_elements(cfg, batch_size, seq_len).values()) * bytes_per_value,
    }
    return {**parts, "total": sum(parts.values())}


def adamw_memory_affine(
    cfg: ModelConfig, seq_len: int | None = None, bytes_per_value: int = FLOAT32_BYTES
) -> tuple[int, int]:
    """``(a, b)`` with peak memory ``a · batch_size + b`` bytes: activations grow with the batch, the rest not."""
    one = adamw_memory_bytes(cfg, 1, seq_len, bytes_per_value)
    return one["activations"], one["total"] - one["activations"]


def max_batch_size(
    cfg: ModelConfig, memory_bytes: float, seq_len: int | None = None, bytes_per_value: int = FLOAT32_BYTES
) -> int:
    """Largest batch whose peak memory fits in ``memory_bytes`` (0 when not even the model and optimizer fit)."""
    a, b = adamw_memory_affine(cfg, seq_len, bytes_per_value)
    return max(0, int((memory_bytes - b) // a))


def adamw_update_flops(cfg: ModelConfig) -> int:
    """FLOPs of the optimizer update alone: a fixed number of element-wise operations per parameter."""
    return ADAMW_FLOPS_PER_PARAMETER * count_parameters(cfg)


def training_step_flops(cfg: ModelConfig, batch_size: int, seq_len: int | None = None) -> int:
    """One training step: forward, backward (twice the forward) over the batch, then the AdamW update."""
    s = _checked_shape(cfg, batch_size, seq_len)
    return 3 * forward_flops(cfg, s) * batch_size + adamw_update_flops(cfg)


def training_days(
    cfg: ModelConfig,
    steps: int,
    batch_size: int,
    peak_flops_per_second: float,
    mfu: float,
    seq_len: int | None = None,
) -> float:
    """Days of training at a model-FLOPs utilisation ``mfu`` of an accelerator's peak throughput."""
    if steps < 0 or peak_flops_per_second <= 0 or not 0 < mfu <= 1:
        raise ValueError(f"need steps >= 0, peak > 0 and 0 < mfu <= 1, got {steps}, {peak_flops_per_second}, {mfu}")
    return steps * training_step_flops(cfg, batch_size, seq_len) / (peak_flops_per_second * mfu) / 86_400
