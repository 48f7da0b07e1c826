"""PNG plots of logged metrics and of accuracies with their intervals, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cs336_basics.toolkit.figures import pyplot, save_figure

from cs336_alignment.intervals import Estimate

SMOOTH_FROM = 30
"""Series this long or longer get a trailing mean drawn over them (shorter ones are drawn point by point)."""


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of each value and the ``window - 1`` before it (fewer at the start): no look-ahead, so a jump shows
    where it happened, not earlier."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    means, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        means.append(total / min(i + 1, window))
    return means


def _save(fig, out_png: str | os.PathLike, bottom: float = 0.0) -> Path:
    """Write ``fig``, leaving the ``bottom`` fraction of its height free (for a figure legend)."""
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save_figure(fig, out_png, dpi=110)


def _panels(count: int):
    """A figure with ``count`` panels, at most three per row (four as two by two); the axes flattened, unused
    ones hidden."""
    columns = 2 if count == 4 else min(3, count)
    rows = -(-count // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def plot_runs(
    runs: Mapping[str, Sequence[dict[str, Any]]],
    keys: Sequence[str],
    out_png: str | os.PathLike,
    title: str,
    x_key: str = "step",
    labels: Mapping[str, str] | None = None,
    markers: Mapping[str, float] | None = None,
) -> Path:
    """One panel per metric in ``keys``, one line per run (``runs`` maps a legend label to its records; records
    lacking a key are skipped). A series of ``SMOOTH_FROM`` points or more (per-step noise, e.g. the reward of
    256 rollouts) is drawn faint, under its trailing mean over a twentieth of its points (at least 5), so that
    trends and the gaps between runs stay readable. ``labels`` renames panels (default: the key with spaces);
    ``markers`` draws a labelled vertical line at each x value in every panel (where one phase of training ends
    and the next begins)."""
    fig, axes = _panels(len(keys))
    for ax, key in zip(axes, keys):
        for name, records in runs.items():
            points = [(r[x_key], r[key]) for r in records if r.get(key) is not None and x_key in r]
            if not points:
                continue
            xs, ys = zip(*points)
            if len(points) < SMOOTH_FROM:
                ax.plot(xs, ys, "o-", markersize=3, label=name or None)
                continue
            (raw,) = ax.plot(xs, ys, "-", linewidth=0.8, alpha=0.3)
            ax.plot(xs, trailing_mean(ys, max(5, len(points) // 20)), "-", color=raw.get_color(), label=name or None)
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
        ax.set_xlabel(x_key.replace("_", " "))
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    if len(runs) < 2:
        return _save(fig, out_png)
    legend = {}  # one legend for the figure: run names can be long
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=1, fontsize=7, frameon=False)
    return _save(fig, out_png, bottom=min(0.5, 0.16 * len(legend) / fig.get_figheight()))


def plot_metrics(
    records: Sequence[dict[str, Any]],
    keys: Sequence[str],
    out_png: str | os.PathLike,
    title: str,
    x_key: str = "step",
    labels: Mapping[str, str] | None = None,
    markers: Mapping[str, float] | None = None,
) -> Path:
    """``plot_runs`` for a single run."""
    return plot_runs({"": records}, keys, out_png, title, x_key, labels, markers)


def plot_estimates(
    groups: Mapping[str, Mapping[str, Estimate]],
    out_png: str | os.PathLike,
    title: str,
    ylabel: str,
    proportions: bool = True,
) -> Path:
    """Grouped bars with 95% interval error bars: one group per key of ``groups`` (a prompt, a run), one bar per
    metric inside it, in the order of the first group. ``proportions`` keeps the axis within [0, 1]."""
    plt = pyplot()
    metrics = list(next(iter(groups.values())))
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(groups) * len(metrics), 3.8))
    width = 0.8 / len(metrics)
    for m, metric in enumerate(metrics):
        estimates = [groups[g][metric] for g in groups]
        xs = [g + (m - (len(metrics) - 1) / 2) * width for g in range(len(groups))]
        errors = [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]
        ax.bar(xs, [e.mean for e in estimates], width, yerr=errors, capsize=3, label=metric.replace("_", " "))
        for x, e in zip(xs, estimates):
            ax.annotate(
                f"{e.mean:.3f}", (x, e.high), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7
            )
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    highest = max(e.high for g in groups.values() for e in g.values())
    ax.set_ylim(0, min(1.05, highest * 1.3 + 0.02) if proportions else highest * 1.15)  # small values readable
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _save(fig, out_png)
