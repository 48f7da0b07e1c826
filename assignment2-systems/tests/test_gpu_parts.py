"""The GPU call's driver script (``benchmarks/gpu_parts.sh``): parts run under the time left, unknown ones named."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_parts.sh"
REPOSITORY = Path(__file__).parents[2]


def run_script(tmp_path: Path, parts: str, end: int) -> str:
    env = {**os.environ, "PARTS": parts, "END": str(end), "RESULTS": str(tmp_path)}
    finished = subprocess.run(["bash", str(SCRIPT)], cwd=REPOSITORY, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    return (tmp_path / "parts.txt").read_text()


def test_parts_without_time_left_are_skipped_and_unknown_ones_named(tmp_path):
    parts = run_script(tmp_path, "train_eager leaderboard_best no_such_part", end=0)
    assert parts.splitlines() == [
        "train_eager skipped (no time left)",
        "leaderboard_best skipped (no time left)",
        "unknown part no_such_part",
    ]


def test_a_part_records_its_start_end_and_exit_status(tmp_path):
    """``probe_gluon`` fails at once on a machine without a GPU (or runs on one); either way the part is logged."""
    lines = run_script(tmp_path, "probe_gluon", end=60).splitlines()
    assert lines[0].startswith("probe_gluon start ") and lines[1].startswith("probe_gluon end ")
    assert lines[1].split(" rc ")[1].isdigit()
    assert (tmp_path / "probe_gluon.log").exists() and (tmp_path / "gpu.txt").exists()
