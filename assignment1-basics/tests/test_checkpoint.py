"""Checkpoint round trips (path and file object), weights_only loading, checksums, atomic writes, compiled models."""

import io

import pytest
import torch
from cs336_basics.checkpoint import content_checksum, load_checkpoint, read_checkpoint, save_checkpoint
from cs336_basics.model import TransformerLM
from cs336_basics.model_config import ModelConfig
from cs336_basics.optimizer import AdamW

CFG = ModelConfig(vocab_size=50, context_length=8, d_model=16, num_layers=1, num_heads=2, d_ff=32)


def _trained(seed=0, steps=3):
    torch.manual_seed(seed)
    model = TransformerLM(CFG)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8)
    for _ in range(steps):
        ids = torch.randint(0, CFG.vocab_size, (2, 8))
        opt.zero_grad()
        model(ids).logsumexp(-1).mean().backward()
        opt.step()
    return model, opt


def _assert_same_state(model_a, opt_a, model_b, opt_b):
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for key in sa["state"]:
        for field, value in sa["state"][key].items():
            other = sb["state"][key][field]
            if torch.is_tensor(value):
                assert torch.allclose(value, other, atol=1e-8, rtol=1e-5)
            else:
                assert value == other


@pytest.mark.parametrize("as_file", [False, True])
def test_round_trip_restores_model_optimizer_and_iteration(tmp_path, as_file):
    model, opt = _trained()
    target = io.BytesIO() if as_file else tmp_path / "ckpt.pt"
    save_checkpoint(model, opt, 17, target)
    if as_file:
        target.seek(0)
    fresh_model, fresh_opt = _trained(seed=1, steps=0)
    fresh_opt = AdamW(fresh_model.parameters(), lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8)
    assert load_checkpoint(target, fresh_model, fresh_opt) == 17
    _assert_same_state(model, opt, fresh_model, fresh_opt)


def test_checkpoint_loads_with_weights_only_and_keeps_extras(tmp_path):
    model, opt = _trained()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, opt, 3, path, extra={"model_config": {"d_model": 16}})
    payload = torch.load(path, weights_only=True)
    assert payload["iteration"] == 3 and payload["model_config"] == {"d_model": 16}
    assert read_checkpoint(path)["model"].keys() == model.state_dict().keys()


def test_compiled_model_is_saved_without_orig_mod_prefix(tmp_path):
    model, opt = _trained(steps=1)
    # wrapping is lazy (nothing is compiled unless called); the eager backend spares importing inductor, which
    # takes half a minute on a busy 2-core machine, and wraps the model in the same OptimizedModule
    compiled = torch.compile(model, backend="eager")
    save_checkpoint(compiled, opt, 1, tmp_path / "c.pt")
    assert not any(k.startswith("_orig_mod.") for k in read_checkpoint(tmp_path / "c.pt")["model"])
    assert load_checkpoint(tmp_path / "c.pt", torch.compile(TransformerLM(CFG), backend="eager")) == 1


class _FailsWhileWriting:
    """Raises part-way through serialisation, as a full disk or a kill would."""

    def __reduce__(self):
        raise RuntimeError("disk full")


def test_failed_write_leaves_previous_checkpoint_and_no_partial_file(tmp_path):
    model, opt = _trained()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(model, opt, 5, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, opt, 6, path, extra={"payload": [torch.zeros(1000), _FailsWhileWriting()]})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_checksum_is_stored_and_removed_on_load(tmp_path):
    model, opt = _trained(steps=1)
    save_checkpoint(model, opt, 2, tmp_path / "c.pt", extra={"model_config": {"d_model": 16}})
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["checksum"].startswith("sha256:") and len(raw["checksum"]) == len("sha256:") + 64
    payload = read_checkpoint(tmp_path / "c.pt")
    assert "checksum" not in payload and payload["model_config"] == {"d_model": 16}
    with pytest.raises(ValueError, match="reserved key"):
        save_checkpoint(model, opt, 2, tmp_path / "d.pt", extra={"checksum": "mine"})


def test_checksum_sees_every_kind_of_change():
    base = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "betas": (0.9, 0.95), "name": "run"}
    changed = [
        {**base, "w": torch.arange(6.0).reshape(3, 2)},
        {**base, "w": torch.arange(6.0).reshape(2, 3).double()},
        {**base, "w": torch.arange(6.0).reshape(2, 3) + 1e-6},
        {**base, "step": 4},
        {**base, "betas": [0.9, 0.95]},
        {**base, "name": "run2"},
        {"step": 3, "w": base["w"], "betas": (0.9, 0.95), "name": "run"},
    ]
    checksums = {content_checksum(value) for value in [base, *changed]}
    assert len(checksums) == len(changed) + 1
    assert content_checksum({**base, "w": base["w"].t().contiguous().t()}) == content_checksum(base)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
