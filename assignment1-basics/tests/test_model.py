"""Attention, block and LM against torch.nn.MultiheadAttention and an independent float64 reimplementation."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from cs336_basics.attention_backends import attention_backend
from cs336_basics.layers import RotaryPositionalEmbedding, scaled_dot_product_attention
from cs336_basics.model import KVCache, MultiHeadSelfAttention, TransformerLM
from cs336_basics.model_config import BUILT_IN_ATTENTION, ModelConfig
from torch import nn

from .conftest import fixture_path

TINY = ModelConfig(vocab_size=97, context_length=24, d_model=32, num_layers=2, num_heads=4, d_ff=48, rope_theta=1000.0)


def _reference_rope(x, positions, theta):
    """Interleaved-pair rotation in float64, as complex multiplication."""
    d = x.shape[-1]
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    angles = positions.double()[..., None] * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).reshape(x.shape)


def _reference_lm(weights, cfg, ids, positions=None):
    """The handout's LM written from scratch in float64 with explicit per-head loops."""
    w = {k: v.double() for k, v in weights.items()}
    seq, h = ids.shape[-1], cfg.num_heads
    d_k = cfg.d_model // h
    positions = torch.arange(seq) if positions is None else positions

    def rms(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * g

    x = w["token_embeddings.weight"][ids]
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        a = rms(x, w[p + "ln1.weight"])
        heads = []
        for head in range(h):
            rows = slice(head * d_k, (head + 1) * d_k)
            q = _reference_rope(a @ w[p + "attn.q_proj.weight"][rows].T, positions, cfg.rope_theta)
            k = _reference_rope(a @ w[p + "attn.k_proj.weight"][rows].T, positions, cfg.rope_theta)
            v = a @ w[p + "attn.v_proj.weight"][rows].T
            scores = (q @ k.transpose(-1, -2) / math.sqrt(d_k)).masked_fill(~causal, -math.inf)
            heads.append(torch.softmax(scores, -1) @ v)
        x = x + torch.cat(heads, -1) @ w[p + "attn.output_proj.weight"].T
        f = rms(x, w[p + "ln2.weight"])
        gate = f @ w[p + "ffn.w1.weight"].T
        x = x + (gate * torch.sigmoid(gate) * (f @ w[p + "ffn.w3.weight"].T)) @ w[p + "ffn.w2.weight"].T
    return rms(x, w["ln_final.weight"]) @ w["lm_head.weight"].T


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    model = TransformerLM(TINY)
    with torch.no_grad():  # non-trivial norm gains so a mix-up of ln1/ln2/ln_final shows
        for name, p in model.named_parameters():
            if name.endswith(("ln1.weight", "ln2.weight", "ln_final.weight")):
                p.copy_(1 + 0.5 * torch.randn_like(p))
    return model


def test_state_dict_keys_are_exactly_the_reference_names():
    model = TransformerLM(TINY)
    per_layer = [
        "attn.q_proj",
        "attn.k_proj",
        "attn.v_proj",
        "attn.output_proj",
        "ln1",
        "ffn.w1",
        "ffn.w2",
        "ffn.w3",
        "ln2",
    ]
    expected = {"token_embeddings.weight", "ln_final.weight", "lm_head.weight"} | {
        f"layers.{i}.{name}.weight" for i in range(TINY.num_layers) for name in per_layer
    }
    assert set(model.state_dict()) == expected
    assert model.state_dict()["layers.0.ffn.w2.weight"].shape == (TINY.d_model, TINY.d_ff)
    assert model.config == TINY


def test_mha_without_rope_matches_torch_multihead_attention():
    torch.manual_seed(0)
    d, h, seq = 32, 4, 10
    ours = MultiHeadSelfAttention(ModelConfig(d_model=d, num_heads=h, position="none"))
    torch_mha = nn.MultiheadAttention(d, h, bias=False, batch_first=True)
    with torch.no_grad():
        torch_mha.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        torch_mha.out_proj.weight.copy_(ours.output_proj.weight)
    x = torch.randn(3, seq, d)
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)  # torch: True = masked out
    expected, _ = torch_mha(x, x, x, attn_mask=future, need_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-6, rtol=1e-5)


def test_mha_with_rope_matches_reference_attention_path_in_float64():
    """The model's fast attention (F.scaled_dot_product_attention) equals our own reference SDPA + RoPE."""
    torch.manual_seed(0)
    d, h, seq, theta = 32, 4, 12, 10000.0
    mha = MultiHeadSelfAttention(ModelConfig(d_model=d, num_heads=h), RotaryPositionalEmbedding(theta, d // h, 16))
    mha = mha.double()
    x = torch.randn(2, seq, d, dtype=torch.float64)
    positions = torch.arange(3, 3 + seq)[None]
    split = lambda t: t.view(2, seq, h, d // h).transpose(1, 2)  # noqa: E731
    q = _reference_rope(split(x @ mha.q_proj.weight.T), positions, theta)
    k = _reference_rope(split(x @ mha.k_proj.weight.T), positions, theta)
    v = split(x @ mha.v_proj.weight.T)
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    heads = scaled_dot_product_attention(q, k, v, causal)
    expected = heads.transpose(1, 2).reshape(2, seq, d) @ mha.output_proj.weight.T
    # float64 everywhere except the RoPE cos/sin tables, which are stored in float32
    torch.testing.assert_close(mha(x, positions), expected, atol=1e-6, rtol=1e-6)


def test_lm_matches_float64_reimplementation_and_accepts_short_inputs():
    model = _tiny_model()
    ids = torch.randint(0, TINY.vocab_size, (3, 17))
    expected = _reference_lm(model.state_dict(), TINY, ids)
    torch.testing.assert_close(model(ids).double(), expected, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(model.double()(ids), expected, atol=2e-6, rtol=1e-5)  # float32 RoPE tables


def test_lm_on_course_fixture_weights_matches_float64_reimplementation():
    root = fixture_path("ts_tests/model.pt").parent
    cfg_json = json.loads((root / "model_config.json").read_text())
    cfg = ModelConfig(**{k: cfg_json[k] for k in ModelConfig.__dataclass_fields__ if k in cfg_json})
    weights = {k.removeprefix("_orig_mod."): v for k, v in torch.load(root / "model.pt", map_location="cpu").items()}
    model = TransformerLM(cfg)
    model.load_state_dict(weights)
    torch.manual_seed(6)
    ids = torch.randint(0, cfg.vocab_size, (4, 12))
    torch.testing.assert_close(model(ids).double(), _reference_lm(weights, cfg, ids), atol=1e-4, rtol=1e-4)


def test_lm_rejects_sequences_beyond_context_length():
    model = TransformerLM(TINY)
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, TINY.context_length + 1, dtype=torch.long))


def test_lm_is_built_from_a_model_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        TransformerLM({"vocab_size": 97, "d_model": 32})  # e.g. the dict a checkpoint stores


def test_the_configs_built_in_attention_names_are_the_registrys():
    assert [attention_backend(name).name for name in BUILT_IN_ATTENTION] == list(BUILT_IN_ATTENTION)


def test_kv_cache_incremental_decoding_equals_full_forward():
    model = _tiny_model().double()
    ids = torch.randint(0, TINY.vocab_size, (2, 15))
    full = model(ids)
    cache = KVCache(TINY.num_layers)
    pieces = [model(ids[:, :6], kv_cache=cache)]  # prefill, then chunks of 1 and 3 tokens
    for start, stop in ((6, 7), (7, 10), *((i, i + 1) for i in range(10, 15))):
        pieces.append(model(ids[:, start:stop], kv_cache=cache))
    assert cache.length == 15
    assert cache.keys[0].shape == (2, TINY.num_heads, 15, TINY.d_model // TINY.num_heads)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-10, rtol=1e-10)


def test_left_padding_with_mask_and_row_positions_matches_unpadded_rows():
    model = _tiny_model().double()
    short, long = torch.randint(0, TINY.vocab_size, (5,)), torch.randint(0, TINY.vocab_size, (9,))
    batch = torch.stack([torch.cat([torch.full((4,), 7), short]), long])
    real = torch.ones(2, 9, dtype=torch.bool)
    real[0, :4] = False
    positions = (real.cumsum(-1) - 1).clamp(min=0)
    cache = KVCache(TINY.num_layers)
    logits = model(batch, positions, cache, real)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0, 4:], model(short[None])[0], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logits[1], model(long[None])[0], atol=1e-10, rtol=1e-10)
    # two decoding steps with the cache, mask grown by one real key per step
    nxt = torch.randint(0, TINY.vocab_size, (2, 2))
    for step in range(2):
        real = torch.cat([real, torch.ones(2, 1, dtype=torch.bool)], dim=1)
        step_logits = model(nxt[:, step : step + 1], positions[:, -1:] + 1 + step, cache, real)
        torch.testing.assert_close(step_logits[0, -1], model(torch.cat([short, nxt[0, : step + 1]])[None])[0, -1])
        torch.testing.assert_close(step_logits[1, -1], model(torch.cat([long, nxt[1, : step + 1]])[None])[0, -1])


def test_bf16_autocast_forward_stays_close_to_float32():
    model = _tiny_model()
    ids = torch.randint(0, TINY.vocab_size, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids)
    assert low.dtype == torch.bfloat16
    reference = model(ids)
    assert (low.float() - reference).abs().max() < 0.05 * reference.abs().max()


def test_lm_loss_gradients_match_float64_reference():
    model = _tiny_model().double()
    ids = torch.randint(0, TINY.vocab_size, (2, 8))
    weights = {k: v.detach().clone().requires_grad_() for k, v in model.state_dict().items()}
    F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    F.cross_entropy(_reference_lm(weights, TINY, ids).flatten(0, 1), ids.flatten()).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, weights[name].grad, atol=1e-7, rtol=1e-5)  # float32 RoPE tables
