"""The model's attention backends: naive and SDPA compute the same model, registration and its errors."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from cs336_basics import attention_backends
from cs336_basics.attention_backends import attention_backend, register_attention_backend, sdpa_masked
from cs336_basics.model import KVCache, ModelConfig, TransformerLM

TINY = ModelConfig(vocab_size=61, context_length=24, d_model=32, num_layers=2, num_heads=4, d_ff=48)


@pytest.fixture
def registry(monkeypatch):
    """The registry with only its built-in backends, restored after the test."""
    monkeypatch.setattr(
        attention_backends, "_BACKENDS", {name: attention_backend(name) for name in attention_backends._BUILT_IN}
    )


def _pair(dtype: torch.dtype, **options) -> tuple[TransformerLM, TransformerLM]:
    """A naive-attention model and an SDPA one with the same weights."""
    torch.manual_seed(0)
    naive = TransformerLM(dataclasses.replace(TINY, attention="naive", **options), dtype=dtype)
    sdpa = TransformerLM(dataclasses.replace(TINY, attention="sdpa", **options), dtype=dtype)
    sdpa.load_state_dict(naive.state_dict())
    return naive, sdpa


# float64 models still run RMSNorm in float32, which rounds the (otherwise float64) gradients of qk_norm's norms
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-8), (torch.float32, 2e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("options", [{}, {"qk_norm": True, "position": "none"}], ids=["default", "qk_norm_nope"])
def test_naive_and_sdpa_give_the_same_logits_and_gradients(dtype, tolerance, options):
    naive, sdpa = _pair(dtype, **options)
    ids = torch.randint(0, TINY.vocab_size, (3, TINY.context_length), generator=torch.Generator().manual_seed(1))
    losses = []
    for model in (naive, sdpa):
        logits = model(ids)
        loss = F.cross_entropy(logits.flatten(0, 1), ids.flatten())
        loss.backward()
        losses.append(logits)
    torch.testing.assert_close(losses[0], losses[1], atol=tolerance, rtol=tolerance)
    gradients = dict(sdpa.named_parameters())
    for name, parameter in naive.named_parameters():
        torch.testing.assert_close(parameter.grad, gradients[name].grad, atol=tolerance, rtol=tolerance)


def test_naive_and_sdpa_agree_on_kv_cache_decoding_of_a_padded_batch():
    """The masked path: left padding, row positions, a prefill then one token at a time."""
    naive, sdpa = _pair(torch.float64)
    ids = torch.randint(0, TINY.vocab_size, (2, 10), generator=torch.Generator().manual_seed(2))
    real = torch.ones(2, 7, dtype=torch.bool)
    real[0, :3] = False
    positions = (real.cumsum(-1) - 1).clamp(min=0)
    outputs = []
    for model in (naive, sdpa):
        cache = KVCache(TINY.num_layers)
        steps = [model(ids[:, :7], positions, cache, real)]
        mask, last = real, positions[:, -1:]
        for step in range(7, 10):
            mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], dim=1)
            last = last + 1
            steps.append(model(ids[:, step : step + 1], last, cache, mask))
        outputs.append(torch.cat(steps, dim=1))
    assert torch.isfinite(outputs[0]).all()
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-10, rtol=1e-10)


def test_default_backend_is_sdpa():
    assert TINY.attention == "sdpa"
    assert TransformerLM(TINY).layers[0].attn.backend.name == "sdpa"


def test_unknown_backend_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match=r"attention must be one of \('flash_triton', 'naive', 'sdpa'\)"):
        dataclasses.replace(TINY, attention="flash")


def test_unregistered_provided_backend_names_the_module_to_import(registry):
    config = dataclasses.replace(TINY, attention="flash_triton")  # a valid choice ...
    with pytest.raises(ValueError, match=r"import cs336_systems\.flash_attention"):  # ... that needs its package
        TransformerLM(config)


def test_registered_backend_runs_causal_calls_and_sdpa_takes_masked_ones(registry):
    calls = []

    def recording_attention(q, k, v):
        calls.append(q.shape)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    backend = register_attention_backend("recording", recording_attention)
    assert backend.masked is sdpa_masked
    assert "recording" in attention_backends.attention_backend_names()
    model = TransformerLM(dataclasses.replace(TINY, attention="recording"))
    ids = torch.randint(0, TINY.vocab_size, (2, 5))
    model(ids)
    assert calls == [(2, TINY.num_heads, 5, TINY.d_model // TINY.num_heads)] * TINY.num_layers
    model(ids, kv_cache=KVCache(TINY.num_layers))  # a cached call goes to the masked path: SDPA
    assert len(calls) == TINY.num_layers


def test_built_in_backends_cannot_be_replaced(registry):
    with pytest.raises(ValueError, match="built-in"):
        register_attention_backend("sdpa", lambda q, k, v: q)
    with pytest.raises(ValueError, match="callables"):
        register_attention_backend("broken", None)
