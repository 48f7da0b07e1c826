"""The training-loss plot of a run: train and validation loss against step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.figures import pyplot, save_figure


def plot_loss_curve(records: list[dict[str, Any]], out_png: str | os.PathLike, title: str = "Training loss") -> Path:
    """Plot ``train_loss`` and ``val_loss`` against step into ``out_png``.

    The loss axis is linear with plain decimal ticks: a log axis over the one decade a run spans shows few, odd
    labels (``4×10⁰``) and squeezes the late improvements that matter."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, style, label=key.replace("_", " "), markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out_png)
