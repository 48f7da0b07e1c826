"""The KV-cache sampler against naive generation that re-runs the full sequence every step, one prompt at a time."""

import pytest
import torch
from cs336_alignment.log_probs import model_logits
from cs336_alignment.sampling import KVCacheSampler, SamplingParams
from cs336_alignment.sampling.decoders import decoder_for
from cs336_basics.generate import sample_continuations

from .conftest import tiny_basics_lm, tiny_llama

PROMPTS = [[5, 17, 42, 7, 99, 3], [11, 12], [250, 1, 2, 3]]


def _naive_greedy(model, prompt, steps, eos=None):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model_logits(model, torch.tensor([ids]))[0, -1].double().argmax())
            if nxt == eos:
                break
            ids.append(nxt)
    return ids[len(prompt) :]


@pytest.mark.parametrize("family", ["hf_llama", "cs336_basics"])
def test_greedy_batched_generation_matches_naive_loop(family):
    model = tiny_llama() if family == "hf_llama" else tiny_basics_lm(300).eval()
    sampler = KVCacheSampler(model, tokenizer=None, eos_id=None, pad_id=0)
    out = sampler.generate_ids(PROMPTS, SamplingParams(temperature=0.0, max_tokens=12))
    for prompt, (ids, reason) in zip(PROMPTS, out):
        assert ids == _naive_greedy(model, prompt, 12)
        assert reason == "length"


def test_rows_that_hit_eos_stop_while_others_continue():
    model = tiny_llama(1)
    free = KVCacheSampler(model, None, pad_id=0).generate_ids(PROMPTS, SamplingParams(temperature=0.0, max_tokens=10))
    eos = free[0][0][3]  # a token the first prompt produces
    first_eos = free[0][0].index(eos)
    sampler = KVCacheSampler(model, None, eos_id=eos, pad_id=0)
    out = sampler.generate_ids(PROMPTS, SamplingParams(temperature=0.0, max_tokens=10))
    for prompt, (ids, reason) in zip(PROMPTS, out):
        expected = _naive_greedy(model, prompt, 10, eos)
        assert ids == expected
        assert reason == ("stop" if len(expected) < 10 else "length")
    assert out[0][0] == free[0][0][:first_eos]


def test_stop_strings_and_n_samples_with_a_text_tokenizer(arith_tokenizer):
    model = tiny_basics_lm(len(arith_tokenizer.vocab))
    sampler = KVCacheSampler(model, arith_tokenizer)
    params = SamplingParams(temperature=1.0, max_tokens=40, n=3, seed=0, stop=(" the",))
    prompts = ["Q: Ava has 3 apples.", "Q: Leo buys 2 boxes."]
    first = sampler.generate(prompts, params)
    assert len(first) == 6 and [c.prompt for c in first] == [p for p in prompts for _ in range(3)]
    for c in first:
        decoded = arith_tokenizer.decode(c.token_ids)
        if " the" in decoded:
            assert c.text == decoded[: decoded.find(" the") + 4] and c.finish_reason == "stop"
        else:  # ended by the length limit, or by sampling the end-of-text token
            assert c.text == decoded and (c.finish_reason == "stop") == (len(c.token_ids) < 40)
    again = sampler.generate(prompts, params)
    assert [c.token_ids for c in again] == [c.token_ids for c in first]


@pytest.mark.parametrize("family", ["hf_static_cache", "hf_dynamic_cache", "cs336_basics"])
def test_dropping_finished_rows_keeps_every_decoders_greedy_tokens(family):
    """12 rows ending at different steps: the static cache moves the live rows into its 8-row bucket on the way."""
    model = tiny_basics_lm(300).eval() if family == "cs336_basics" else tiny_llama(1)
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 300, (1 + i % 7,), generator=gen).tolist() for i in range(12)]

    def decode(drop_finished):
        return sample_continuations(
            decoder_for(model, 16, static_cache=family == "hf_static_cache", cuda_graphs=False),
            prompts,
            12,
            temperature=0.0,
            device=torch.device("cpu"),
            stop=lambda tokens: len(tokens) >= 2 + tokens[0] % 9,  # a row's length follows its first token
            drop_finished=drop_finished,
        )

    dropped = decode(True)
    assert dropped == decode(False)
    assert len({len(tokens) for tokens, _ in dropped}) > 3
