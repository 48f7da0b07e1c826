"""The configuration of the Transformer LM, importable without torch (scripts parse it before loading the model).

Named shapes of the handouts are in :mod:`cs336_basics.model_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass

NORM_PLACEMENTS = ("pre", "post", "none")
POSITION_ENCODINGS = ("rope", "rope_half", "none")
FEED_FORWARDS = ("swiglu", "silu", "relu2")
BUILT_IN_ATTENTION = ("naive", "sdpa")  # cs336_basics.attention_backends' own; others are registered there


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a :class:`~cs336_basics.model.TransformerLM`; the defaults are the handout's TinyStories model
    (10000, 256, 512, 4, 16, 1344).

    The remaining fields are the handout's ablations and the speedrun options; their defaults are the handout's
    model. ``norm``: RMSNorm before each sub-layer (``pre``), after each residual add (``post``), or none.
    ``position``: RoPE, RoPE on half-split pairs (``rope_half``: the same model up to a permutation of each head's
    dimensions, laid out for faster kernels), or no position information at all (NoPE; causal attention still
    orders tokens).
    ``ffn``: SwiGLU, or the ungated SiLU / ReLU² feed-forward (two matrices: use
    :func:`cs336_basics.model.matched_d_ff`).
    ``qk_norm`` normalises queries and keys per head (stabilises high learning rates); ``zero_init_output``
    starts every residual branch's output projection at zero (each block begins as the identity);
    ``logit_softcap`` > 0 bounds the logits to ``±cap`` with ``cap·tanh(z/cap)``. ``attention`` names the
    attention backend (``naive``, ``sdpa`` or a registered one such as ``cs336_systems``'s ``flash_triton``); it
    changes speed and memory, not the function computed.
    """

    vocab_size: int = 10_000
    context_length: int = 256
    d_model: int = 512
    num_layers: int = 4
    num_heads: int = 16
    d_ff: int = 1344
    rope_theta: float = 10_000.0
    norm: str = "pre"
    position: str = "rope"
    ffn: str = "swiglu"
    qk_norm: bool = False
    zero_init_output: bool = False
    logit_softcap: float = 0.0
    attention: str = "sdpa"

    def __post_init__(self):
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if self.position != "none" and (self.d_model // self.num_heads) % 2:
            raise ValueError(f"head size {self.d_model // self.num_heads} must be even for RoPE")
        for name, choices in (("norm", NORM_PLACEMENTS), ("position", POSITION_ENCODINGS), ("ffn", FEED_FORWARDS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.logit_softcap < 0:
            raise ValueError(f"logit_softcap must be >= 0 (0 = off), got {self.logit_softcap}")
        if self.attention not in BUILT_IN_ATTENTION:
            from cs336_basics.attention_backends import attention_backend_names  # torch: only for other backends

            if self.attention not in attention_backend_names():
                raise ValueError(f"attention must be one of {attention_backend_names()}, got {self.attention!r}")
