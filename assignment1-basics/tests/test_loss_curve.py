"""The run's loss plot is written as a PNG, with or without validation points."""

from cs336_basics.loss_curve import plot_loss_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_loss_curve_is_written_as_png(tmp_path):
    records = [{"step": s, "train_loss": 9.0 / s} for s in range(1, 50)] + [{"step": 49, "val_loss": 0.3}]
    path = plot_loss_curve(records, tmp_path / "loss_curve.png")
    assert path == tmp_path / "loss_curve.png" and path.read_bytes()[:8] == PNG_MAGIC


def test_loss_curve_without_validation_points_is_written_too(tmp_path):
    path = plot_loss_curve([{"step": 1, "train_loss": 2.0}], tmp_path / "curve.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
