"""Per-token log-probabilities (and entropies) of labels under a causal LM."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from cs336_alignment.losses import compute_entropy


def model_logits(model: torch.nn.Module, input_ids: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq vocab"]:
    """Logits of a Hugging Face causal LM (``.logits``) or of a ``cs336_basics`` TransformerLM (a tensor)."""
    out = model(input_ids)
    return out if isinstance(out, Tensor) else out.logits


def label_log_probs(
    logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]
) -> Float[Tensor, "batch seq"]:
    """``log softmax(logits)[label]`` computed as ``logit[label] - logsumexp`` in float32 (no full log-softmax)."""
    logits = logits.float()
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def get_response_log_probs(
    model: torch.nn.Module,
    input_ids: Int[Tensor, "batch seq"],
    labels: Int[Tensor, "batch seq"],
    return_token_entropy: bool = False,
) -> dict[str, Tensor]:
    """``{"log_probs": (batch, seq)}`` plus ``"token_entropy"`` (not differentiated) when asked; no masking."""
    logits = model_logits(model, input_ids)
    result = {"log_probs": label_log_probs(logits, labels)}
    if return_token_entropy:
        with torch.no_grad():
            result["token_entropy"] = compute_entropy(logits.float())
    return result


def sequence_log_prob(model: torch.nn.Module, token_ids: list[int], device: torch.device | str) -> Tensor:
    """Sum of ``log p(x_t | x_<t)`` over ``t >= 1`` of one token sequence (the first token is given)."""
    ids = torch.tensor([token_ids], dtype=torch.long, device=device)
    return label_log_probs(model_logits(model, ids[:, :-1]), ids[:, 1:]).sum()
