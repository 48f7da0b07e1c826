"""Closed-form parameter and FLOP counts of a :class:`~cs336_basics.model.TransformerLM`.

FLOPs count matrix multiplies only (2 per multiply-add), which dominate: RMSNorm, SiLU, softmax and RoPE are
O(seq · d_model) and ignored. Attention scores and the weighted sum over values are counted over the full
``seq × seq`` square, as dense kernels compute them (the causal half is not skipped).
"""

from __future__ import annotations

from cs336_basics.model import ModelConfig


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


def forward_flops_breakdown(cfg: ModelConfig, seq_len: int) -> dict[str, int]:
    """Matmul FLOPs of one forward pass over one sequence of ``seq_len`` tokens, by component (all layers)."""
    d, f, v, n, s = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers, seq_len
    return {
        "attention_qkv_projections": n * 3 * 2 * s * d * d,
        "attention_scores": n * 2 * s * s * d,  # Q Kᵀ summed over heads: h · (2 · s · s · d/h)
        "attention_weighted_values": n * 2 * s * s * d,
        "attention_output_projection": n * 2 * s * d * d,
        "ffn": n * (3 if cfg.ffn == "swiglu" else 2) * 2 * s * d * f,
        "lm_head": 2 * s * d * v,
    }


def forward_flops(cfg: ModelConfig, seq_len: int) -> int:
    """Total matmul FLOPs of one forward pass over one sequence of ``seq_len`` tokens."""
    return sum(forward_flops_breakdown(cfg, seq_len).values())


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward + backward FLOPs per trained token: backward costs twice the forward (grads of inputs and weights)."""
    return 3 * forward_flops(cfg, seq_len) / seq_len
