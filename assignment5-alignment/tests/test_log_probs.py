"""Response log-probabilities and entropies of a tiny GPT-2 against a float64 forward pass."""

import copy

import torch
from cs336_alignment.log_probs import get_response_log_probs, sequence_log_prob


def test_log_probs_and_entropy_match_float64_reference(tiny_gpt2):
    torch.manual_seed(0)
    input_ids = torch.randint(0, 50257, (2, 9))
    labels = torch.randint(0, 50257, (2, 9))
    got = get_response_log_probs(tiny_gpt2, input_ids, labels, return_token_entropy=True)
    ref_model = copy.deepcopy(tiny_gpt2).double()
    with torch.no_grad():
        logits = ref_model(input_ids).logits
    log_p = logits - torch.logsumexp(logits, -1, keepdim=True)
    for b in range(2):
        for t in range(9):
            assert abs(got["log_probs"][b, t].item() - log_p[b, t, labels[b, t]].item()) < 1e-4
    entropy = -(log_p.exp() * log_p).sum(-1)
    torch.testing.assert_close(got["token_entropy"].double(), entropy, rtol=1e-4, atol=1e-4)
    assert got["log_probs"].shape == (2, 9)


def test_log_probs_are_differentiable_and_entropy_optional(tiny_gpt2):
    ids = torch.randint(0, 50257, (1, 5))
    out = get_response_log_probs(tiny_gpt2, ids, ids, return_token_entropy=False)
    assert set(out) == {"log_probs"}
    out["log_probs"].sum().backward()
    assert tiny_gpt2.transformer.wte.weight.grad is not None
    tiny_gpt2.zero_grad(set_to_none=True)


def test_sequence_log_prob_is_sum_of_next_token_log_probs(tiny_gpt2):
    ids = [464, 2068, 7586, 21831, 18045]
    with torch.no_grad():
        total = sequence_log_prob(tiny_gpt2, ids, "cpu")
        logits = tiny_gpt2(torch.tensor([ids])).logits[0].double()
    expected = sum(torch.log_softmax(logits[t], -1)[ids[t + 1]].item() for t in range(len(ids) - 1))
    assert abs(total.item() - expected) < 1e-4
