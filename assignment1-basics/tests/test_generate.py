"""The top-p sampler against a brute-force nucleus, and cached decoding against naive full-recompute decoding."""

from itertools import combinations

import pytest
import torch
from cs336_basics.generate import (
    TransformerLMDecoder,
    generate,
    generate_batch,
    nucleus,
    sample_continuations,
    sample_next_token,
)
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig

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


def _brute_force_nucleus(probs: list[float], top_p: float) -> list[float]:
    """The smallest set of tokens whose mass reaches ``top_p`` (the most massive among sets of that size), found by
    enumerating every set of tokens, then renormalised."""
    for size in range(1, len(probs) + 1):
        best = max(combinations(range(len(probs)), size), key=lambda subset: sum(probs[i] for i in subset))
        mass = sum(probs[i] for i in best)
        if mass >= top_p:
            return [probs[i] / mass if i in best else 0.0 for i in range(len(probs))]
    raise AssertionError("the whole vocabulary always reaches top_p <= 1")


def test_nucleus_equals_the_brute_force_smallest_set_reaching_top_p():
    gen = torch.Generator().manual_seed(0)
    for vocab in range(1, 8):
        probs = torch.rand(50, vocab, generator=gen, dtype=torch.float64).pow(3)
        probs = probs / probs.sum(dim=-1, keepdim=True)
        for top_p in (0.05, 0.3, 0.5, 0.77, 0.9, 0.999):
            expected = [_brute_force_nucleus(row, top_p) for row in probs.tolist()]
            torch.testing.assert_close(nucleus(probs, top_p), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.01, [0, 1, 0, 0, 0]),  # the most likely token is always kept
        (0.5, [0, 1, 0, 0, 0]),  # its mass reaches 0.5 exactly: nothing more is needed
        (0.6, [0, 2 / 3, 0, 1 / 3, 0]),
        (0.75, [0, 2 / 3, 0, 1 / 3, 0]),  # 0.5 + 0.25 reaches 0.75 exactly
        (0.8, [1 / 7, 4 / 7, 0, 2 / 7, 0]),
        (0.875, [1 / 7, 4 / 7, 0, 2 / 7, 0]),
        (1.0, [0.125, 0.5, 0.0625, 0.25, 0.0625]),
    ],
)
def test_nucleus_of_a_hand_worked_distribution(top_p, expected):
    probs = torch.tensor([[0.125, 0.5, 0.0625, 0.25, 0.0625]], dtype=torch.float64)  # exact in binary
    assert nucleus(probs, top_p).tolist() == [expected]


def test_top_p_one_keeps_every_token_even_below_float_resolution():
    probs = torch.softmax(torch.tensor([[0.0, -30.0, -40.0]]), dim=-1)
    assert float(probs[0, :1].sum()) == 1.0  # the running sum reaches 1 before the last two tokens
    assert torch.equal(nucleus(probs, 1.0), probs)
    assert (nucleus(probs, 1.0) > 0).all()


def test_temperature_zero_is_argmax_whatever_top_p():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0))
    for top_p in (0.1, 1.0):
        assert torch.equal(sample_next_token(logits, temperature=0.0, top_p=top_p), logits.argmax(dim=-1))


PROMPTS = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4], [30, 31]]
EOS = 0  # the seed-0 model emits it greedily after 5 and 0 tokens in rows 0-1, late in row 2, never in row 3


def _continue(model, max_new_tokens, **kw):
    return sample_continuations(
        TransformerLMDecoder(model), PROMPTS, max_new_tokens, device=torch.device("cpu"), **{"temperature": 0.0, **kw}
    )


def test_eos_and_max_new_tokens_end_rows():
    model = _model()
    free = [_naive_greedy(model, p, 10) for p in PROMPTS]
    out = _continue(model, 10, eos_token_id=EOS)
    for row, (tokens, reason) in zip(free, out):
        ends = EOS in row
        assert tokens == (row[: row.index(EOS)] if ends else row)
        assert reason == ("stop" if ends else "length")
    assert [reason for _, reason in out] == ["stop", "stop", "length", "length"]


def test_stop_rule_keeps_its_token_and_min_new_tokens_suppresses_eos():
    model = _model()
    out = _continue(model, 10, eos_token_id=EOS, stop=lambda tokens: tokens[-1] == 13)
    assert out[3] == ([10, 13], "stop")
    assert out[1][0] == [] and out[1][1] == "stop"  # row 1 samples EOS first
    forced = _continue(model, 10, eos_token_id=EOS, min_new_tokens=3)
    assert len(forced[1][0]) >= 3 and EOS not in forced[1][0][:3]


def test_samples_of_one_prompt_share_its_prefill():
    model = _model()
    out = sample_continuations(
        TransformerLMDecoder(model), PROMPTS[:2], 6, temperature=0.0, device=torch.device("cpu"), samples_per_prompt=3
    )
    assert [tokens for tokens, _ in out] == [_naive_greedy(model, p, 6) for p in PROMPTS[:2] for _ in range(3)]


@pytest.mark.parametrize("max_new_tokens", [10, 30])  # 30 runs past the context: the window is re-encoded
def test_dropping_finished_rows_gives_the_same_greedy_tokens(max_new_tokens):
    model = _model()
    dropped = _continue(model, max_new_tokens, eos_token_id=EOS)
    kept = _continue(model, max_new_tokens, eos_token_id=EOS, drop_finished=False)
    assert dropped == kept
    assert sum(reason == "stop" for _, reason in dropped) >= 2


def test_finished_rows_leave_the_batch():
    class RecordingDecoder(TransformerLMDecoder):
        def __init__(self, model):
            super().__init__(model)
            self.batches = []

        def step(self, tokens):
            self.batches.append(len(tokens))
            return super().step(tokens)

    decoder = RecordingDecoder(_model())
    out = sample_continuations(decoder, PROMPTS, 30, temperature=0.0, eos_token_id=EOS, device=torch.device("cpu"))
    ended_at = [len(tokens) for tokens, reason in out if reason == "stop"]  # the step that sampled EOS
    assert len(ended_at) == 3
    assert decoder.batches == [len(PROMPTS) - sum(end <= step for end in ended_at) for step in range(29)]


def test_seeded_sampling_is_reproducible_and_drops_rows_only_after_the_first_ends():
    """Every step draws one batch's worth of random numbers, so once a row leaves the batch the others read
    different ones: dropping and keeping finished rows agree up to the step where the first row ends."""
    model = _model()

    def sampled(drop_finished, eos):
        gen = torch.Generator().manual_seed(0)
        return _continue(model, 12, temperature=1.0, eos_token_id=eos, generator=gen, drop_finished=drop_finished)

    eos = sampled(True, None)[0][0][3]  # row 0 samples it by step 3
    dropped, kept = sampled(True, eos), sampled(False, eos)
    assert sampled(True, eos) == dropped
    first_end = min(len(tokens) for tokens, reason in dropped if reason == "stop")
    for (a, _), (b, _) in zip(dropped, kept):
        assert a[: first_end + 1] == b[: first_end + 1]
