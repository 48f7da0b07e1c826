"""Metric plots: one panel per metric, phase markers drawn in every panel, written as a PNG."""

import matplotlib.axes
from cs336_alignment.plots import plot_metrics


def test_markers_are_drawn_in_every_panel_and_the_png_is_written(tmp_path, monkeypatch):
    drawn = []
    original = matplotlib.axes.Axes.axvline

    def record(self, x=0, *args, **kwargs):
        drawn.append(x)
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", record)
    records = [{"step": s, "loss": 1 / s} for s in range(1, 5)] + [{"step": 5, "reward": 0.5}]
    out = plot_metrics(
        records, ["loss", "reward"], tmp_path / "p.png", "t", labels={"loss": "L"}, markers={"GRPO starts": 4.5}
    )
    assert drawn == [4.5, 4.5]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
