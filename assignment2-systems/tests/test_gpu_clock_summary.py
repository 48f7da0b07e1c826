"""The per-part clock and power summary of a device call, on a hand-written log."""

from pathlib import Path

import pytest
from cs336_basics.toolkit.entry_points import load_entry_point_module

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_clock_summary.py"
LOG = """timestamp, clocks.current.sm [MHz], power.draw [W], temperature.gpu, clocks_event_reasons.active
2026/12/04 05:00:00.000, 345 MHz, 80.00 W, 35, 0x0000000000000001
2026/12/04 05:00:01.000, 1980 MHz, 650.00 W, 50, 0x0000000000000000
2026/12/04 05:00:02.000, 1800 MHz, 699.00 W, 58, 0x0000000000000004
2026/12/04 05:00:03.000, 1770 MHz, 700.50 W, 60, 0x0000000000000004
2026/12/04 05:00:04.000, 1980 MHz, 120.00 W, 40, 0x0000000000000000
2026/12/04 05:00:05.000, 1980 MHz, 130.00 W, 41, 0x0000000000000000
2026/12/04 05:00:06.0
"""
PARTS = """compile start 2026/12/04 05:00:00.000
compile end 2026/12/04 05:00:00.500 rc 0
timed start 2026/12/04 05:00:00.500
timed end 2026/12/04 05:00:04.500 rc 0
idle start 2026/12/04 05:00:04.500
idle end 2026/12/04 05:00:05.500 rc 0
cut start 2026/12/04 05:00:05.600
"""


@pytest.fixture(scope="module")
def tool():
    return load_entry_point_module(SCRIPT)


def test_rows_summarise_the_busy_samples_of_each_ended_part(tool, tmp_path):
    (tmp_path / "gpu_clocks.csv").write_text(LOG)
    (tmp_path / "parts.txt").write_text(PARTS)
    config = tool.ClockSummaryConfig(str(tmp_path / "gpu_clocks.csv"), str(tmp_path / "parts.txt"))
    samples = tool.read_samples(config.clock_log)
    assert len(samples) == 6  # the header and the cut last line are not samples
    assert list(tool.read_parts(config.parts)) == ["compile", "timed", "idle"]  # "cut" never ended
    table = tool.summarize(config).splitlines()
    assert table[0].startswith("| part | busy samples | median SM MHz |")
    # timed: samples at 1, 2, 3 s are busy (> 300 W), the one at 4 s is not; two of three at the power cap
    assert table[3] == "| timed | 3 of 4 | 1800 | 1770-1980 | 699 | 700 | 60 | 67% |"
    assert table[2] == "| compile | 0 of 1 | - | - | - | - | - | - |"
    assert table[4] == "| idle | 0 of 1 | - | - | - | - | - | - |"
    busier = tool.ClockSummaryConfig(config.clock_log, config.parts, busy_watts=690.0, out_dir=str(tmp_path / "out"))
    tool.main(busier)
    written = (tmp_path / "out" / "clock_summary.md").read_text()
    assert "| timed | 2 of 4 | 1785 | 1770-1800 | 700 | 700 | 60 | 100% |" in written
