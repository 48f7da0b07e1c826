"""Outputs are created with normal permissions (0666 less the umask: 0644 under umask 022), not mkstemp's 0600,
so a checkpoint, plot or vocabulary can be read by the other users of a shared machine."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from cs336_basics.checkpoint import save_checkpoint
from cs336_basics.loss_curve import plot_loss_curve
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure
from cs336_basics.vocab_files import save_vocab_merges


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_checkpoint_plot_vocab_and_report_are_0644(tmp_path, umask_022):
    model = torch.nn.Linear(2, 2)
    save_checkpoint(model, torch.optim.SGD(model.parameters(), lr=0.1), 3, tmp_path / "checkpoint.pt")
    plot_loss_curve([{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.5}], tmp_path / "loss.png")
    vocab = {i: bytes([i]) for i in range(256)}
    save_vocab_merges(vocab, [], tmp_path / "vocab.json", tmp_path / "merges.txt")
    fig, _ = pyplot().subplots()
    save_figure(fig, tmp_path / "figure.png")
    write_json_atomic(tmp_path / "results.json", {"a": 1})
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["checkpoint.pt", "figure.png", "loss.png", "merges.txt", "results.json", "vocab.json"]
    assert {name: mode(tmp_path / name) for name in written} == dict.fromkeys(written, 0o644)
