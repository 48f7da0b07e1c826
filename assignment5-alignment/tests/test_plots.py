"""Metric plots: one panel per metric, phase markers drawn in every panel, written as a PNG."""

import matplotlib.axes
import pytest
from cs336_alignment.plots import plot_metrics, plot_runs, trailing_mean


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


def test_trailing_mean_matches_a_brute_force_window_without_look_ahead():
    values = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0, 6.0]
    for window in (1, 3, 8, 20):
        expected = [sum(values[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(values))]
        assert trailing_mean(values, window) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="window must be at least 1"):
        trailing_mean(values, 0)


def test_a_long_noisy_series_is_drawn_faint_under_its_trailing_mean_in_the_same_colour(tmp_path, monkeypatch):
    lines = []
    original = matplotlib.axes.Axes.plot

    def record(self, *args, **kwargs):
        drawn = original(self, *args, **kwargs)
        lines.extend(drawn)
        return drawn

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    steps = range(1, 101)
    records = [{"step": s, "reward": float(s % 2)} for s in steps] + [{"step": s, "val": 0.5} for s in (10, 20)]
    plot_runs({"a": records}, ["reward", "val"], tmp_path / "p.png", "t")
    raw, smooth, short = lines
    assert list(raw.get_ydata()) == [float(s % 2) for s in steps] and raw.get_alpha() < 1
    assert smooth.get_color() == raw.get_color() and smooth.get_label() == "a"
    assert list(smooth.get_ydata())[-1] == pytest.approx(0.4)  # window max(5, 100 // 20): steps 96-100 give 0,1,0,1,0
    assert list(short.get_ydata()) == [0.5, 0.5] and short.get_marker() == "o"
