"""The Triton FlashAttention-2 as the model's ``flash_triton`` backend, against the same model on SDPA.

Without a GPU the kernels run in Triton's interpreter (``conftest.py`` sets ``TRITON_INTERPRET=1``), in float32.
"""

import dataclasses
import os

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch._dynamo  # noqa: F401  (the custom ops import it on first call: pay it here, not inside a test)

from cs336_basics.model import KVCache, ModelConfig, TransformerLM
from cs336_systems.flash_attention.model_backend import causal_flash_attention

from tests.flash_attention_checks import relative_error

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCE = 5e-3 if DEVICE == "cuda" else 1e-5  # TF32 dots on the GPU, true float32 in the interpreter
TINY = ModelConfig(vocab_size=37, context_length=32, d_model=64, num_layers=2, num_heads=4, d_ff=96)  # head size 16


def _pair(config: ModelConfig = TINY) -> tuple[TransformerLM, TransformerLM]:
    """A flash_triton model and an SDPA one with the same float32 weights."""
    torch.manual_seed(0)
    flash = TransformerLM(dataclasses.replace(config, attention="flash_triton"), device=DEVICE)
    sdpa = TransformerLM(config, device=DEVICE)
    sdpa.load_state_dict(flash.state_dict())
    return flash, sdpa


def test_importing_the_package_registers_flash_triton():
    model = TransformerLM(dataclasses.replace(TINY, attention="flash_triton"))
    assert model.layers[0].attn.backend.causal is causal_flash_attention


@pytest.mark.parametrize("position", ["rope", "none"])
def test_flash_triton_model_matches_sdpa_logits_and_gradients(position):
    """With RoPE the model hands the kernels contiguous Q and K and a strided V; without it all three are strided
    views of the projections (the kernels read them where they lie)."""
    flash, sdpa = _pair(dataclasses.replace(TINY, position=position))
    ids = torch.randint(0, TINY.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    logits = []
    for model in (flash, sdpa):
        out = model(ids)
        F.cross_entropy(out.flatten(0, 1), ids.flatten()).backward()
        logits.append(out.detach())
    assert relative_error(logits[0], logits[1]) < TOLERANCE
    gradients = dict(sdpa.named_parameters())
    for name, parameter in flash.named_parameters():
        error = relative_error(parameter.grad, gradients[name].grad)
        assert error < TOLERANCE, f"{name}: relative gradient error {error:.2e}"


def test_the_models_layout_reaches_the_kernels_without_copies():
    """V as the model makes it, a view of the ``(batch, seq, heads * d)`` projection: O comes back in its layout, so
    the model's ``h s d -> s (h d)`` rearrange of O is a view, and dV too."""
    q, k, v = (torch.randn(2, 24, 64, device=DEVICE).view(2, 24, 4, 16).transpose(1, 2) for _ in range(3))
    q, k, v = q.contiguous().requires_grad_(), k.contiguous().requires_grad_(), v.requires_grad_()
    out = causal_flash_attention(q, k, v)
    assert out.stride() == v.stride()
    (dv,) = torch.autograd.grad(out, (v,), torch.randn_like(out))
    assert dv.stride() == v.stride()


def test_kv_cache_and_padding_calls_fall_back_to_sdpa():
    """The kernels take no mask: cached / padded calls run SDPA, so decoding a flash model works unchanged."""
    flash, sdpa = _pair()
    ids = torch.randint(0, TINY.vocab_size, (2, 9), generator=torch.Generator().manual_seed(2)).to(DEVICE)
    real = torch.ones(2, 8, dtype=torch.bool, device=DEVICE)
    real[0, :2] = False
    positions = (real.cumsum(-1) - 1).clamp(min=0)
    outputs = []
    with torch.no_grad():
        for model in (flash, sdpa):
            cache = KVCache(TINY.num_layers)
            prefill = model(ids[:, :8], positions, cache, real)
            mask = torch.cat([real, torch.ones(2, 1, dtype=torch.bool, device=DEVICE)], dim=1)
            step = model(ids[:, 8:], positions[:, -1:] + 1, cache, mask)
            outputs.append(torch.cat([prefill, step], dim=1))
    torch.testing.assert_close(outputs[0], outputs[1])


@pytest.mark.skipif(DEVICE != "cuda", reason="bf16 tl.dot needs a GPU (the interpreter mishandles it)")
def test_autocast_runs_the_kernels_in_bfloat16():
    q = torch.randn(2, 4, 128, 64, device=DEVICE)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = causal_flash_attention(q, q, q)
    assert out.dtype == torch.bfloat16
