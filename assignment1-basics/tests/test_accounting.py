"""Parameter and FLOP accounting against the built model and torch's FLOP counter."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from cs336_basics.accounting import (
    ADAMW_FLOPS_PER_PARAMETER,
    activation_elements,
    adamw_memory_affine,
    adamw_memory_bytes,
    adamw_update_flops,
    count_parameters,
    forward_flops,
    forward_flops_breakdown,
    forward_matmuls,
    max_batch_size,
    training_days,
    training_flops_per_token,
    training_step_flops,
)
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.toolkit.cli import parse_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

TINY = ModelConfig(vocab_size=101, context_length=16, d_model=24, num_layers=3, num_heads=4, d_ff=40)


def test_parameter_count_equals_built_model():
    model = TransformerLM(TINY)
    assert count_parameters(TINY) == sum(p.numel() for p in model.parameters())
    assert count_parameters(TINY, include_embeddings=False) == count_parameters(TINY) - 101 * 24


def test_forward_flops_match_hand_count_and_torch_flop_counter():
    seq = 10
    per_layer = 2 * seq * 24 * 24 * 4 + 2 * 2 * seq * seq * 24 + 2 * seq * 24 * 40 * 3
    hand = 3 * per_layer + 2 * seq * 24 * 101
    assert forward_flops(TINY, seq) == hand
    model = TransformerLM(TINY)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, seq, dtype=torch.long))
    assert counter.get_total_flops() == hand
    assert sum(forward_flops_breakdown(TINY, seq).values()) == hand


def test_gpt2_xl_accounting_matches_handout_scale():
    """GPT-2 XL shapes (handout's accounting problem): ~2.1B parameters, ~4.5 TFLOPs per 1024-token forward."""
    xl = ModelConfig(vocab_size=50257, context_length=1024, d_model=1600, num_layers=48, num_heads=25, d_ff=6400)
    assert 2.10e9 < count_parameters(xl) < 2.14e9
    assert 4.4e12 < forward_flops(xl, 1024) < 4.6e12
    assert training_flops_per_token(xl, 1024) == 3 * forward_flops(xl, 1024) / 1024


def test_forward_matmuls_list_every_multiply_with_its_shape():
    shapes = [(m.description, m.m, m.n, m.p, m.count) for m in forward_matmuls(TINY, 10)]
    assert shapes == [
        ("Q projection", 10, 24, 24, 3),
        ("K projection", 10, 24, 24, 3),
        ("V projection", 10, 24, 24, 3),
        ("Q Kᵀ per head", 10, 6, 10, 12),
        ("softmax(scores) V per head", 10, 10, 6, 12),
        ("output projection", 10, 24, 24, 3),
        ("W1: hidden pre-activation", 10, 24, 40, 3),
        ("W3: gate (SwiGLU)", 10, 24, 40, 3),
        ("W2: back to d_model", 10, 40, 24, 3),
        ("LM head: logits", 10, 24, 101, 1),
    ]
    silu = ModelConfig(**{**TINY.__dict__, "ffn": "silu"})
    assert [m.description for m in forward_matmuls(silu, 10) if m.component == "ffn"] == [
        "W1: hidden pre-activation",
        "W2: back to d_model",
    ]


def test_activations_of_tiny_model_by_hand():
    """Batch 2 × 16 tokens = 32 tokens; d=24, 3 layers, 4 heads, d_ff=40 (SwiGLU), vocab 101."""
    assert activation_elements(TINY, 2) == {
        "rmsnorm": 3 * 2 * 32 * 24,
        "attention_qkv": 3 * 3 * 32 * 24,
        "attention_scores": 3 * 2 * 4 * 16 * 16,
        "attention_softmax": 3 * 2 * 4 * 16 * 16,
        "attention_weighted_values": 3 * 32 * 24,
        "attention_output_projection": 3 * 32 * 24,
        "ffn": 3 * (4 * 32 * 40 + 32 * 24),
        "final_rmsnorm": 32 * 24,
        "lm_head_logits": 32 * 101,
        "cross_entropy_softmax": 32 * 101,
    }
    assert sum(activation_elements(TINY, 2).values()) == 53_312
    memory = adamw_memory_bytes(TINY, 2)
    assert memory["parameters"] == memory["gradients"] == 4 * 20_568
    assert memory["optimizer_state"] == 8 * 20_568
    assert memory["activations"] == 4 * 53_312 and memory["total"] == 16 * 20_568 + 4 * 53_312 == 542_336


def test_handout_closed_form_for_gpt2_xl():
    """The handout's adamwAccounting with d_ff = 4·d and W1 → SiLU → W2: per layer 16·B·T·d + 2·B·h·T² values,
    then B·T·d (final RMSNorm) + 2·B·T·V (logits and their softmax); 4 copies of the P parameters."""
    v, t, n, d, h = 50_257, 1024, 48, 1600, 25
    xl = ModelConfig(vocab_size=v, context_length=t, d_model=d, num_layers=n, num_heads=h, d_ff=4 * d, ffn="silu")
    params = n * (12 * d * d + 2 * d) + d + 2 * v * d
    assert count_parameters(xl) == params
    for batch in (1, 3, 8):
        values = n * (16 * batch * t * d + 2 * batch * h * t * t) + batch * t * d + 2 * batch * t * v
        assert adamw_memory_bytes(xl, batch)["total"] == 4 * (4 * params + values)
    a, b = adamw_memory_affine(xl)
    assert (a, b) == (4 * (n * (16 * t * d + 2 * h * t * t) + t * d + 2 * t * v), 16 * params)


def test_max_batch_size_is_the_last_that_fits():
    a, b = adamw_memory_affine(TINY)
    assert (a, b) == (4 * 26_656, 16 * 20_568)
    assert max_batch_size(TINY, 542_336) == 2
    assert max_batch_size(TINY, 542_335) == 1
    assert max_batch_size(TINY, b - 1) == 0
    with pytest.raises(ValueError, match="batch_size and seq_len must be >= 1"):
        activation_elements(TINY, 0)


class _ElementwiseValues(TorchDispatchMode):
    """Counts the values every tensor operation produces: one FLOP each for element-wise arithmetic."""

    def __init__(self):
        super().__init__()
        self.values = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.values += out.numel()
        return out


def test_adamw_flops_per_parameter_count_the_handout_update():
    p, g, m, v = (torch.rand(7, 5, dtype=torch.float64) for _ in range(4))
    lr, beta1, beta2, eps, decay, step = 1e-3, 0.9, 0.999, 1e-8, 0.01, 3
    alpha = lr * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
    with _ElementwiseValues() as counter:  # the handout's algorithm 1, one operation at a time
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g * g)
        p = p - alpha * m / (torch.sqrt(v) + eps)
        p = p - (lr * decay) * p
    assert counter.values == ADAMW_FLOPS_PER_PARAMETER * p.numel()
    assert adamw_update_flops(TINY) == 14 * 20_568


def test_training_step_and_days():
    assert training_step_flops(TINY, 4) == 3 * forward_flops(TINY, 16) * 4 + 14 * 20_568
    assert training_step_flops(TINY, 4, seq_len=10) == 3 * forward_flops(TINY, 10) * 4 + 14 * 20_568
    seconds = 100 * training_step_flops(TINY, 4) / (2e9 * 0.5)
    assert training_days(TINY, 100, 4, 2e9, 0.5) == pytest.approx(seconds / 86_400)
    with pytest.raises(ValueError, match="mfu"):
        training_days(TINY, 100, 4, 2e9, 0.0)


def test_accounting_report_script_writes_every_model(tmp_path):
    path = Path(__file__).resolve().parents[1] / "scripts" / "accounting_report.py"
    spec = importlib.util.spec_from_file_location("script_accounting_report", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    report = module.main(parse_config(module.AccountingReportConfig, ["--out_dir", str(tmp_path)]))
    saved = json.loads((tmp_path / "accounting.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert list(saved["models"]) == ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt2-xl-16k"]
    xl = saved["models"]["gpt2-xl"]
    assert xl["forward_flops"] == sum(xl["forward_flops_breakdown"].values())
    assert sum(xl["forward_flops_share"].values()) == pytest.approx(1.0)
    assert "gpt2-xl-16k" in (tmp_path / "table.md").read_text()
