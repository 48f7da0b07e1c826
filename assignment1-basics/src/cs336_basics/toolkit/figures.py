"""Saving matplotlib figures: headless (the Agg backend), atomic, and closed afterwards so loops do not leak."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cs336_basics.toolkit.atomic import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: scripts and tests run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120, **savefig_kwargs: Any) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, PNG by default) atomically, then close it."""
    path = Path(path)
    try:
        with atomic_output(path) as f:
            fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    finally:
        pyplot().close(fig)
    return path
