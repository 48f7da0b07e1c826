"""PNG plots of logged metrics against step, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def plot_metrics(
    records: Sequence[dict[str, Any]],
    keys: Sequence[str],
    out_png: str | os.PathLike,
    title: str,
    x_key: str = "step",
    labels: Mapping[str, str] | None = None,
    markers: Mapping[str, float] | None = None,
) -> Path:
    """One panel per metric in ``keys`` (records lacking a key are skipped), ``x_key`` on the x axis.

    ``labels`` renames panels (default: the key with spaces); ``markers`` draws a labelled vertical line at each
    x value in every panel (where one phase of training ends and the next begins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r[x_key], r[key]) for r in records if key in r and x_key in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "o-" if len(points) < 30 else "-", markersize=3)
        for name, x in (markers or {}).items():
            ax.axvline(x, color="tab:red", linestyle="--", linewidth=1)
            ax.annotate(
                name,
                (x, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=7,
                color="tab:red",
            )
        ax.set_title((labels or {}).get(key, key.replace("_", " ")))
        ax.set_xlabel(x_key)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=out_png.parent, prefix=f".{out_png.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out_png)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return out_png
