"""A policy saved after training loads back unchanged: the GRPO start is the SFT run's saved checkpoint, so any
difference between the two runs' evaluations of it must come from decoding, not from the save and load."""

from __future__ import annotations

import torch
from cs336_alignment.models import load_causal_lm, save_policy
from cs336_alignment.optim import make_optimizer

from tests.conftest import tiny_llama


def test_a_trained_policy_saved_and_loaded_has_the_same_weights_and_logits(gpt2_tokenizer, tmp_path):
    policy = tiny_llama().train()
    optimizer = make_optimizer(policy, 1e-2)
    tokens = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # trained weights, not the initial ones, whose values a loader could re-create
        policy(tokens, labels=tokens).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    save_policy(policy, gpt2_tokenizer, tmp_path / "policy")
    loaded = load_causal_lm(str(tmp_path / "policy"))

    saved, reloaded = policy.state_dict(), loaded.state_dict()
    assert saved.keys() == reloaded.keys()
    for name, tensor in saved.items():
        assert torch.equal(reloaded[name], tensor), name
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight  # the tied embedding stays tied
    with torch.no_grad():
        assert torch.equal(loaded.eval()(tokens).logits, policy.eval()(tokens).logits)
