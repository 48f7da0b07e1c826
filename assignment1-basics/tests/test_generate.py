"""Sampling and cached decoding against naive full-recompute decoding."""

import pytest
import torch
from cs336_basics.generate import generate, generate_batch, sample_next_token
from cs336_basics.model import ModelConfig, TransformerLM

CFG = ModelConfig(vocab_size=40, context_length=20, d_model=32, num_layers=2, num_heads=4, d_ff=48)


def _model(seed=0):
    torch.manual_seed(seed)
    return TransformerLM(CFG).double()


def _naive_greedy(model, prompt, n):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt) :]


def test_greedy_with_kv_cache_equals_naive_recompute():
    model = _model()
    prompt = [3, 14, 15, 9, 2]
    assert generate(model, prompt, 12, temperature=0.0) == _naive_greedy(model, prompt, 12)


def test_batched_left_padded_generation_equals_one_prompt_at_a_time():
    model = _model(1)
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4]]
    batched = generate_batch(model, prompts, 8, temperature=0.0)
    assert batched == [generate(model, p, 8, temperature=0.0) for p in prompts]
    assert batched[0] == _naive_greedy(model, prompts[0], 8)


def test_generation_stops_at_eos_without_emitting_it():
    model = _model()
    prompt = [3, 14, 15]
    free = _naive_greedy(model, prompt, 6)
    eos = free[3]
    out = generate(model, prompt, 6, temperature=0.0, eos_token_id=eos)
    assert out == free[: free.index(eos)]


def test_generation_past_the_context_length_keeps_going():
    model = _model()
    prompt = list(range(1, 11))
    out = generate(model, prompt, 30, temperature=0.0)
    assert len(out) == 30
    fits = CFG.context_length - len(prompt)
    assert out[:fits] == _naive_greedy(model, prompt, fits)


def test_top_p_samples_only_from_the_nucleus_in_proportion():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(20000, 4)
    gen = torch.Generator().manual_seed(0)
    samples = sample_next_token(logits, temperature=1.0, top_p=0.7, generator=gen)
    freq = torch.bincount(samples, minlength=4).double() / len(samples)
    # nucleus for 0.7 = {0, 1} (0.5 < 0.7 ≤ 0.8), renormalised to 0.625 / 0.375
    torch.testing.assert_close(freq, torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64), atol=0.015, rtol=0)


def test_temperature_sharpens_and_flattens_the_distribution():
    probs = torch.tensor([0.6, 0.4])
    logits = probs.log().expand(20000, 2)
    for temperature in (0.5, 2.0):
        gen = torch.Generator().manual_seed(1)
        freq = sample_next_token(logits, temperature=temperature, generator=gen).double().mean()
        expected = probs[1] ** (1 / temperature) / (probs ** (1 / temperature)).sum()
        assert freq.item() == pytest.approx(expected.item(), abs=0.015)
    assert sample_next_token(torch.tensor([[0.1, 3.0, -1.0]]), temperature=0.0).tolist() == [1]


def test_invalid_sampling_arguments_are_rejected():
    with pytest.raises(ValueError):
        sample_next_token(torch.zeros(1, 3), top_p=0.0)
    with pytest.raises(ValueError, match="at least one token"):
        generate(_model(), [], 3)
