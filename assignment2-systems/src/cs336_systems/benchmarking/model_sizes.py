"""The handout's model sizes (Table 1): vocabulary 10,000 and batch 4 for every size.

The 2025 handout lists small … 2.7B; the 2026 one renames 2.7B to ``xl`` and adds a 10B model.
Here ``xl`` keeps its 2025 meaning (1600 wide, 48 layers) and the 2026 ``xl`` is ``2.7B``.
"""

from dataclasses import dataclass

from cs336_basics.model import ModelConfig

VOCAB_SIZE = 10_000
BATCH_SIZE = 4


@dataclass(frozen=True)
class ModelSize:
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int


MODEL_SIZES: dict[str, ModelSize] = {
    "small": ModelSize(768, 3072, 12, 12),
    "medium": ModelSize(1024, 4096, 24, 16),
    "large": ModelSize(1280, 5120, 36, 20),
    "xl": ModelSize(1600, 6400, 48, 25),
    "2.7B": ModelSize(2560, 10240, 32, 32),
    "10B": ModelSize(4608, 12288, 50, 36),
}


def model_config(size: str | ModelSize, context_length: int, vocab_size: int = VOCAB_SIZE) -> ModelConfig:
    """``ModelConfig`` for a named size (or an explicit :class:`ModelSize`) at ``context_length``."""
    if isinstance(size, str):
        if size not in MODEL_SIZES:
            raise ValueError(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
        size = MODEL_SIZES[size]
    return ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=size.d_model,
        num_layers=size.num_layers,
        num_heads=size.num_heads,
        d_ff=size.d_ff,
    )
