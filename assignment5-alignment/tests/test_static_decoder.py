"""The static-cache decoder against independent references: every step's logits against a full forward pass of
each row on its own (no padding, no cache), greedy tokens against ``transformers.generate``, and sampling
against the dynamic-cache decoder; across left padding, length buckets, EOS and bucket compaction."""

import pytest
import torch
from cs336_alignment.sampling import KVCacheSampler, SamplingParams
from cs336_alignment.sampling.static_decoder import StaticCacheDecoder, supports_static_cache
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from .conftest import tiny_llama


def tiny_qwen2(seed: int = 0):
    """Qwen2's variant of the architecture: biases on the q/k/v projections, untied head."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random init leaves the biases at zero; make them matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    return model


def _left_pad(prompts):
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = True
    return ids, mask


def _reference_logits(model, sequence):
    with torch.no_grad():
        return model(torch.tensor([sequence])).logits[0, -1]


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
def test_every_step_matches_a_full_forward_through_length_buckets_and_compaction(make_model):
    model = make_model()
    assert supports_static_cache(model)
    gen = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(1, 300, (int(n),), generator=gen).tolist() for n in torch.randint(1, 9, (20,), generator=gen)
    ]
    decoder = StaticCacheDecoder(model, max_batch_size=20, cuda_graphs=False, length_block=8)
    ids, mask = _left_pad(prompts)
    logits = decoder.prefill(ids, mask, repeats=1, max_new_tokens=24)
    sequences = [list(p) for p in prompts]
    live = list(range(20))
    for step in range(22):  # crosses length buckets of 8 positions
        for row, seq in zip(live, logits):
            torch.testing.assert_close(seq, _reference_logits(model, sequences[row]), atol=2e-5, rtol=1e-5)
        if step in (5, 11):  # drop rows: 20 -> 13 (bucket 32 -> 16) -> 6 (bucket 8), kept out of order
            keep = [k for k in range(len(live)) if k % 3 != 1] if step == 5 else [0, 2, 3, 7, 9, 12]
            decoder.select(torch.tensor(keep))
            live = [live[k] for k in keep]
        fed = torch.randint(1, 300, (len(live),), generator=gen)
        for row, token in zip(live, fed.tolist()):
            sequences[row].append(token)
        logits = decoder.step(fed)
    assert decoder._bucket == 8 and len(live) == 6


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
def test_greedy_tokens_equal_transformers_generate_with_left_padding(make_model):
    model = make_model(1)
    prompts = [[5, 17, 42, 7, 99, 3], [11, 12], [250, 1, 2, 3], [9]]
    ids, mask = _left_pad(prompts)
    with torch.no_grad():
        reference = model.generate(
            input_ids=ids,
            attention_mask=mask.long(),
            max_new_tokens=16,
            min_new_tokens=16,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )[:, ids.shape[1] :].tolist()
    sampler = KVCacheSampler(model, None, pad_id=0, show_progress=False)
    ours = sampler.generate_ids(prompts, SamplingParams(temperature=0.0, max_tokens=16))
    assert [tokens for tokens, _ in ours] == reference
    again = sampler.generate_ids(prompts, SamplingParams(temperature=0.0, max_tokens=40))  # buffers grow
    assert [tokens[:16] for tokens, _ in again] == reference


def test_rows_finishing_at_eos_compact_and_match_each_rows_own_greedy_decoding():
    torch.manual_seed(2)  # a small vocabulary and large weights: rows share tokens at varied steps
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    model = LlamaForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 7, (24,), generator=gen).tolist()
    prompts = [torch.randint(1, 40, (n,), generator=gen).tolist() for n in lengths]
    free = KVCacheSampler(model, None, pad_id=0, show_progress=False).generate_ids(
        prompts, SamplingParams(temperature=0.0, max_tokens=12)
    )
    rows_with = torch.bincount(torch.tensor([t for tokens, _ in free for t in set(tokens)]), minlength=40)
    eos = 1 + int(rows_with[1:].argmax())  # the token most rows generate (not the pad id)
    sampler = KVCacheSampler(model, None, eos_id=eos, pad_id=0, show_progress=False)
    out = sampler.generate_ids(prompts, SamplingParams(temperature=0.0, max_tokens=12))
    for prompt, (tokens, reason) in zip(prompts, out):
        expected = []
        while len(expected) < 12:
            nxt = int(_reference_logits(model, prompt + expected).argmax())
            if nxt == eos:
                break
            expected.append(nxt)
        assert tokens == expected
        assert reason == ("stop" if len(expected) < 12 else "length")
    lengths = sorted(len(tokens) for tokens, _ in out)
    assert lengths[0] < 8 and sum(n >= 8 for n in lengths) <= 16 and lengths[-1] == 12  # bucket 32 -> 16 mid-way


def test_seeded_samples_equal_those_of_the_dynamic_cache_decoder():
    model = tiny_llama(3)
    prompts = [[5, 17, 42], [11, 12, 13, 14, 15], [7]]
    params = SamplingParams(temperature=1.0, max_tokens=10, n=4, seed=7)
    static = KVCacheSampler(model, None, eos_id=None, pad_id=0, show_progress=False).generate_ids(prompts, params)
    dynamic = KVCacheSampler(model, None, eos_id=None, pad_id=0, show_progress=False, static_cache=False).generate_ids(
        prompts, params
    )
    assert static == dynamic
    assert len({tuple(t) for t, _ in static[:4]}) > 1  # the four samples of a prompt differ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replay_gives_the_eager_tokens():
    model = tiny_llama(4).cuda()
    prompts = [[5, 17, 42, 7], [11, 12], [250, 1, 2, 3, 4, 5]] * 7
    params = SamplingParams(temperature=0.0, max_tokens=300)
    graphs = KVCacheSampler(model, None, pad_id=0, show_progress=False).generate_ids(prompts, params)
    eager = KVCacheSampler(model, None, pad_id=0, show_progress=False, cuda_graphs=False).generate_ids(prompts, params)
    assert graphs == eager
