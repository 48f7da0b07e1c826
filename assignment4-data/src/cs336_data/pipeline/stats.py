"""Per-step document counts: merged across shards, written as JSON, a Markdown table and a PNG bar chart."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure
from cs336_basics.toolkit.tables import markdown_table

STEP_ORDER_KEY = "_order"


class PipelineStats:
    """``counts[step][key]``: ``in``, ``kept``, ``dropped``, ``dropped:<reason>``, ``error:<kind>``, ``modified``."""

    def __init__(self, counts: dict[str, Counter] | None = None, order: list[str] | None = None):
        self.counts: dict[str, Counter] = counts or {}
        self.order: list[str] = order or list(self.counts)

    def add(self, step: str, key: str, n: int = 1) -> None:
        if step not in self.counts:
            self.counts[step] = Counter()
            self.order.append(step)
        self.counts[step][key] += n

    def merge(self, other: PipelineStats) -> None:
        for step in other.order:
            for key, n in other.counts[step].items():
                self.add(step, key, n)

    def to_dict(self) -> dict:
        return {STEP_ORDER_KEY: self.order, **{s: dict(self.counts[s]) for s in self.order}}

    @classmethod
    def from_dict(cls, data: dict) -> PipelineStats:
        order = list(data.get(STEP_ORDER_KEY, [k for k in data if k != STEP_ORDER_KEY]))
        return cls({s: Counter(data[s]) for s in order}, order)

    def save(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PipelineStats:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def table(self) -> str:
        """Markdown table: documents in, kept, dropped (with reasons), errors per step."""
        rows = []
        for step in self.order:
            c = self.counts[step]
            details = ", ".join(f"{k}={v}" for k, v in sorted(c.items()) if k not in ("in", "kept", "dropped"))
            pct = 100.0 * c["dropped"] / c["in"] if c["in"] else 0.0
            rows.append([step, c["in"], c["kept"], c["dropped"], f"{pct:.1f}", details])
        return markdown_table(["step", "in", "kept", "dropped", "dropped %", "details"], rows, align="lrrrrl")

    def plot(self, path: str | os.PathLike) -> None:
        plt = pyplot()
        steps = [s for s in self.order if self.counts[s]["in"]]
        kept = [self.counts[s]["kept"] for s in steps]
        dropped = [self.counts[s]["dropped"] for s in steps]
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(steps)), 4))
        ax.bar(steps, kept, label="kept", color="tab:green")
        ax.bar(steps, dropped, bottom=kept, label="dropped", color="tab:red")
        ax.set_ylabel("documents")
        ax.set_title("Documents kept and dropped per pipeline step")
        ax.legend()
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        fig.tight_layout()
        save_figure(fig, path)
