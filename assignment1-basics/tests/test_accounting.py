"""Parameter and FLOP accounting against the built model and torch's FLOP counter."""

import torch
from cs336_basics.accounting import count_parameters, forward_flops, forward_flops_breakdown, training_flops_per_token
from cs336_basics.model import ModelConfig, TransformerLM
from torch.utils.flop_counter import FlopCounterMode

TINY = ModelConfig(vocab_size=101, context_length=16, d_model=24, num_layers=3, num_heads=4, d_ff=40)


def test_parameter_count_equals_built_model():
    model = TransformerLM.from_config(TINY)
    assert count_parameters(TINY) == sum(p.numel() for p in model.parameters())
    assert count_parameters(TINY, include_embeddings=False) == count_parameters(TINY) - 101 * 24


def test_forward_flops_match_hand_count_and_torch_flop_counter():
    seq = 10
    per_layer = 2 * seq * 24 * 24 * 4 + 2 * 2 * seq * seq * 24 + 2 * seq * 24 * 40 * 3
    hand = 3 * per_layer + 2 * seq * 24 * 101
    assert forward_flops(TINY, seq) == hand
    model = TransformerLM.from_config(TINY)
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
