"""The ablation and speedrun options of ModelConfig against an independent float64 reimplementation."""

import dataclasses
import math

import pytest
import torch
from cs336_basics.accounting import count_parameters
from cs336_basics.model import KVCache, TransformerLM, matched_d_ff
from cs336_basics.model_config import ModelConfig

BASE = ModelConfig(vocab_size=53, context_length=16, d_model=24, num_layers=2, num_heads=3, d_ff=40, rope_theta=500.0)


def _rope(x, positions, theta):
    d = x.shape[-1]
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    angles = positions.double()[..., None] * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).reshape(x.shape)


def _reference(weights, cfg: ModelConfig, ids):
    """Float64, per-head loops, every option spelled out from its definition."""
    w = {k: v.double() for k, v in weights.items()}
    seq, h = ids.shape[-1], cfg.num_heads
    d_k = cfg.d_model // h
    positions = torch.arange(seq)
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))

    def rms(x, name):
        if cfg.norm == "none":
            return x
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w[name]

    def head_norm(x, name):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w[name] if cfg.qk_norm else x

    def attention(a, p):
        heads = []
        for head in range(h):
            rows = slice(head * d_k, (head + 1) * d_k)
            q = head_norm(a @ w[p + "attn.q_proj.weight"][rows].T, p + "attn.q_norm.weight")
            k = head_norm(a @ w[p + "attn.k_proj.weight"][rows].T, p + "attn.k_norm.weight")
            if cfg.position == "rope":
                q, k = _rope(q, positions, cfg.rope_theta), _rope(k, positions, cfg.rope_theta)
            elif cfg.position == "rope_half":  # pairs (j, j + d/2): interleaved RoPE in a permuted order
                order = torch.cat((torch.arange(0, d_k, 2), torch.arange(1, d_k, 2)))
                back = torch.argsort(order)
                q = _rope(q[..., back], positions, cfg.rope_theta)[..., order]
                k = _rope(k[..., back], positions, cfg.rope_theta)[..., order]
            v = a @ w[p + "attn.v_proj.weight"][rows].T
            scores = (q @ k.transpose(-1, -2) / math.sqrt(d_k)).masked_fill(~causal, -math.inf)
            heads.append(torch.softmax(scores, -1) @ v)
        return torch.cat(heads, -1) @ w[p + "attn.output_proj.weight"].T

    def ffn(f, p):
        up = f @ w[p + "ffn.w1.weight"].T
        if cfg.ffn == "swiglu":
            hidden = up * torch.sigmoid(up) * (f @ w[p + "ffn.w3.weight"].T)
        elif cfg.ffn == "silu":
            hidden = up * torch.sigmoid(up)
        else:
            hidden = torch.clamp(up, min=0) ** 2
        return hidden @ w[p + "ffn.w2.weight"].T

    x = w["token_embeddings.weight"][ids]
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        if cfg.norm == "post":
            x = rms(x + attention(x, p), p + "ln1.weight")
            x = rms(x + ffn(x, p), p + "ln2.weight")
        else:
            x = x + attention(rms(x, p + "ln1.weight"), p)
            x = x + ffn(rms(x, p + "ln2.weight"), p)
    if cfg.norm == "pre":
        x = rms(x, "ln_final.weight")
    logits = x @ w["lm_head.weight"].T
    if cfg.logit_softcap:
        logits = cfg.logit_softcap * torch.tanh(logits / cfg.logit_softcap)
    return logits


VARIANTS = {
    "post_norm": dict(norm="post"),
    "no_norm": dict(norm="none"),
    "nope": dict(position="none"),
    "rope_half": dict(position="rope_half"),
    "silu": dict(ffn="silu", d_ff=matched_d_ff(40, "silu")),
    "relu2_qknorm_softcap": dict(ffn="relu2", d_ff=60, qk_norm=True, logit_softcap=3.0),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_float64_reference(name):
    cfg = dataclasses.replace(BASE, **VARIANTS[name])
    torch.manual_seed(0)
    model = TransformerLM(cfg).double()
    with torch.no_grad():  # non-trivial gains, so a misplaced norm shows
        for key, p in model.named_parameters():
            if key.endswith("norm.weight") or ".ln" in key or key.startswith("ln"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
    ids = torch.randint(0, cfg.vocab_size, (2, 11))
    torch.testing.assert_close(model(ids), _reference(model.state_dict(), cfg, ids), atol=1e-6, rtol=1e-6)


def test_default_config_is_the_handouts_model_and_norm_free_models_have_no_gains():
    assert ModelConfig() == ModelConfig(norm="pre", position="rope", ffn="swiglu", qk_norm=False)
    no_norm = TransformerLM(dataclasses.replace(BASE, norm="none"))
    assert not any("ln" in key for key in no_norm.state_dict())
    post = TransformerLM(dataclasses.replace(BASE, norm="post"))
    assert "ln_final.weight" not in post.state_dict() and "layers.0.ln1.weight" in post.state_dict()


def test_matched_d_ff_gives_silu_the_parameters_of_swiglu():
    swiglu = ModelConfig(d_ff=1344)
    silu = dataclasses.replace(swiglu, ffn="silu", d_ff=matched_d_ff(1344, "silu"))
    assert silu.d_ff == 2016
    count = lambda cfg: sum(p.numel() for p in TransformerLM(cfg, device="meta").parameters())  # noqa: E731
    assert count(silu) == count(swiglu) == count_parameters(swiglu)


def test_zero_initialised_projections_make_every_block_the_identity_at_start():
    cfg = dataclasses.replace(BASE, zero_init_output=True, norm="pre")
    torch.manual_seed(0)
    model = TransformerLM(cfg)
    x = torch.randn(2, 7, cfg.d_model)
    for layer in model.layers:
        torch.testing.assert_close(layer(x), x)
    assert model.layers[0].ffn.w1.weight.abs().sum() > 0  # only the output projections start at zero


def test_kv_cache_decoding_matches_full_forward_for_qk_norm_and_nope():
    cfg = dataclasses.replace(BASE, qk_norm=True, position="none", ffn="relu2")
    torch.manual_seed(1)
    model = TransformerLM(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    full = model(ids)
    cache = KVCache(cfg.num_layers)
    steps = [model(ids[:, :5], kv_cache=cache)] + [model(ids[:, t : t + 1], kv_cache=cache) for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "change", [dict(norm="layer"), dict(position="alibi"), dict(ffn="gelu"), dict(logit_softcap=-1.0)]
)
def test_unknown_options_are_rejected_with_the_choices(change):
    with pytest.raises(ValueError, match="must be"):
        dataclasses.replace(BASE, **change)


def test_nope_allows_odd_head_sizes_rope_does_not():
    ModelConfig(d_model=15, num_heads=5, position="none")
    with pytest.raises(ValueError, match="even"):
        ModelConfig(d_model=15, num_heads=5)


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_of_every_variant_matches_the_model(name):
    cfg = dataclasses.replace(BASE, **VARIANTS[name])
    assert count_parameters(cfg) == sum(p.numel() for p in TransformerLM(cfg).parameters())
