"""The training loop end to end on a tiny model: learning, metrics, plot, validation, exact resume, time budget."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from cs336_basics.checkpoint import read_checkpoint
from cs336_basics.model_config import ModelConfig
from cs336_basics.train import train
from cs336_basics.train_config import TrainConfig, warn_if_warmup_outlasts
from cs336_basics.vocab_files import save_vocab_merges

TINY = ModelConfig(vocab_size=64, context_length=16, d_model=32, num_layers=1, num_heads=2, d_ff=64)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    """A periodic sequence: each token determines the next, so a model that learns drives the loss to ~0."""
    path = tmp_path_factory.mktemp("tokens") / "tokens.bin"
    np.tile(np.arange(50, dtype=np.uint16), 200).tofile(path)
    return str(path)


def config(token_file, out_dir, **overrides) -> TrainConfig:
    defaults = dict(
        train_data=token_file,
        valid_data=token_file,
        out_dir=str(out_dir),
        model=TINY,
        batch_size=8,
        max_iters=40,
        max_lr=1e-2,
        min_lr=1e-3,
        warmup_iters=4,
        log_interval=5,
        eval_interval=20,
        eval_batches=2,
        checkpoint_interval=20,
        progress=False,
        device="cpu",
    )
    return TrainConfig(**(defaults | overrides))


def records(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_learns_and_writes_metrics_plot_and_checkpoint(tmp_path, token_file):
    summary = train(config(token_file, tmp_path))
    logged = records(tmp_path)
    train_losses = [r["train_loss"] for r in logged if "train_loss" in r]
    assert [r["step"] for r in logged if "train_loss" in r] == list(range(5, 41, 5))
    assert [r["step"] for r in logged if "val_loss" in r] == [20, 40]
    assert train_losses[0] > 3.0 and train_losses[-1] < 1.0, train_losses  # ln(64) = 4.16 at the start
    assert summary["val_loss"] < 1.0 and summary["iterations"] == 40
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 40


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, token_file):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(config(token_file, straight, max_iters=30, checkpoint_interval=10))
    train(config(token_file, split, max_iters=17, cosine_cycle_iters=30, checkpoint_interval=10))
    # The checkpoint is at step 17; the metrics log is cut back to it and continued without duplicates.
    train(config(token_file, split, max_iters=30, checkpoint_interval=10, resume=True))
    a, b = read_checkpoint(straight / "checkpoint.pt"), read_checkpoint(split / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 30
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-6)
    steps = [r["step"] for r in records(split) if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 30


def test_time_budget_stops_early_with_a_checkpoint(tmp_path, token_file):
    summary = train(config(token_file, tmp_path, max_seconds=0.0, valid_data=None))
    assert summary["iterations"] == 1 and summary["val_loss"] is None
    assert read_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 1


def test_token_ids_beyond_the_vocabulary_are_a_clear_error(tmp_path, token_file):
    small = ModelConfig(vocab_size=32, context_length=16, d_model=32, num_layers=1, num_heads=2, d_ff=64)
    with pytest.raises(ValueError, match="different tokenizer"):
        train(config(token_file, tmp_path, model=small))


def test_vocabulary_size_defaults_to_the_datas_largest_id_with_a_warning(tmp_path, token_file):
    data_sized = ModelConfig(**{**TINY.__dict__, "vocab_size": 0})  # TrainConfig's default: not given
    with pytest.warns(UserWarning, match="largest token id \\+ 1 = 50"):
        train(config(token_file, tmp_path, model=data_sized, max_iters=4))
    assert read_checkpoint(tmp_path / "checkpoint.pt")["model_config"]["vocab_size"] == 50  # ids 0..49
    assert TrainConfig(train_data=token_file).model.vocab_size == 0


def test_vocabulary_size_comes_from_the_tokenizer_and_must_agree_with_a_given_one(tmp_path, token_file):
    vocab = {i: bytes([i]) for i in range(60)} | {60: b"<|endoftext|>"}
    save_vocab_merges(vocab, [], tmp_path / "vocab.json", tmp_path / "merges.txt")
    from_tokenizer = ModelConfig(**{**TINY.__dict__, "vocab_size": 0})
    train(config(token_file, tmp_path / "run", model=from_tokenizer, vocab=str(tmp_path / "vocab.json"), max_iters=4))
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["model_config"]["vocab_size"] == 61
    with pytest.raises(ValueError, match="disagrees with the tokenizer"):
        train(config(token_file, tmp_path / "other", model=TINY, vocab=str(tmp_path / "vocab.json")))


def test_a_warmup_longer_than_the_run_is_warned_about(token_file):
    with pytest.warns(UserWarning, match="warmup_iters=100 is longer than the run"):
        TrainConfig(train_data=token_file, warmup_iters=100, max_iters=10)


def test_a_warmup_longer_than_a_time_budgeted_run_is_warned_about_once_its_length_is_known():
    with pytest.warns(UserWarning, match="warmup_iters=100 is longer than the run \\(39 steps\\)"):
        warn_if_warmup_outlasts(100, 39)  # what train() calls after fitting the run to its time budget
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_warmup_outlasts(39, 39)


def test_compiled_step_traces_model_and_loss_as_one_graph_and_matches_eager(tmp_path, token_file, monkeypatch):
    """``compile=True`` hands ``torch.compile`` one function, the model and its loss together (left outside, the
    loss ran as eager passes over the logits: 20.4 ms a step on an H200 against 11.5 ms in ``bench_train_gpu``,
    which compiles both). Dynamo's eager backend checks that it traces without graph breaks (``fullgraph``) and
    trains like the uncompiled loop, without Inductor's compile time."""
    compiled_functions, real_compile = [], torch.compile

    def compile_eagerly(fn, **kwargs):
        compiled_functions.append(fn)
        return real_compile(fn, backend="eager", fullgraph=True, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    eager = train(config(token_file, tmp_path / "eager", max_iters=10, eval_interval=10))
    compiled = train(config(token_file, tmp_path / "compiled", max_iters=10, eval_interval=10, compile=True))
    assert [fn.__name__ for fn in compiled_functions] == ["forward_loss"]
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-5)
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-5)
