"""Clock and power of a GPU call, part by part: was the board at its power cap while a benchmark ran?

The device scripts log ``nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,
clocks_throttle_reasons.active --format=csv -lms 250`` for a whole call (``gpu_clocks.csv``) and each part's start
and end (``parts.txt``: ``NAME start YYYY/MM/DD HH:MM:SS.mmm`` and ``NAME end ... rc N``). Long attention kernels on
an H200 hold its ~700 W cap, where the SM clock drops below its maximum; two timings taken at different clocks are
not comparable to the percent. This prints one markdown row per part over the samples inside it with a power draw
above ``--busy_watts`` (the GPU working, not compiling or idle): their count, median and range of the SM clock,
median and maximum power, the maximum temperature, and the share of busy samples whose active clock-event reasons
include the software power cap (bit 0x4). The table is printed and written to ``<out_dir>/clock_summary.md``.

Run (any machine, on a call's files):
    python3 assignment2-systems/benchmarks/gpu_clock_summary.py --clock_log gpu_clocks.csv --parts parts.txt \
        --out_dir /tmp/clocks
"""

import csv
import os
import statistics
from dataclasses import dataclass, field
from datetime import datetime

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.tables import records_table

TIME_FORMAT = "%Y/%m/%d %H:%M:%S.%f"
SW_POWER_CAP = 0x4
"""``clocks_event_reasons.active`` bit of the software power cap (NVML's ``clocksEventReasonSwPowerCap``)."""


@dataclass(frozen=True)
class ClockSummaryConfig:
    """Per-part SM clock and power of one device call."""

    clock_log: str = field(default="gpu_clocks.csv", metadata={"help": "nvidia-smi CSV log of the call"})
    parts: str = field(default="parts.txt", metadata={"help": "the parts' start and end lines"})
    busy_watts: float = field(default=300.0, metadata={"help": "samples above this power draw count as busy"})
    out_dir: str = field(default="runs/clock_summary", metadata={"help": "folder for clock_summary.md"})


@dataclass(frozen=True)
class Sample:
    time: datetime
    sm_mhz: int
    watts: float
    celsius: int
    reasons: int


def read_samples(path: str) -> list[Sample]:
    """The log's samples; lines that are not samples (nvidia-smi's header, a cut last line) are skipped."""
    samples = []
    with open(path, newline="") as log:
        for row in csv.reader(log):
            try:
                time = datetime.strptime(row[0].strip(), TIME_FORMAT)
                sample = Sample(time, int(row[1].split()[0]), float(row[2].split()[0]), int(row[3]), int(row[4], 16))
            except (ValueError, IndexError):
                continue
            samples.append(sample)
    return samples


def read_parts(path: str) -> dict[str, tuple[datetime, datetime]]:
    """Part name -> (start, end), in the order the parts started; a part without an end line is left out."""
    starts, ends = {}, {}
    with open(path) as lines:
        for line in lines:
            name, event, day, clock = line.split()[:4]
            (starts if event == "start" else ends)[name] = datetime.strptime(f"{day} {clock}", TIME_FORMAT)
    return {name: (start, ends[name]) for name, start in starts.items() if name in ends}


def summarize_part(name: str, samples: list[Sample], busy_watts: float) -> dict:
    """One row: the busy samples' clock, power and power-cap share (dashes when the part had none)."""
    busy = [s for s in samples if s.watts > busy_watts]
    row = {"part": name, "busy": f"{len(busy)} of {len(samples)}"}
    if not busy:
        return row
    clocks = [s.sm_mhz for s in busy]
    return {
        **row,
        "median_mhz": f"{statistics.median(clocks):.0f}",
        "mhz_range": f"{min(clocks)}-{max(clocks)}",
        "median_w": f"{statistics.median(s.watts for s in busy):.0f}",
        "max_w": f"{max(s.watts for s in busy):.0f}",
        "max_c": max(s.celsius for s in samples),
        "cap_share": f"{sum(bool(s.reasons & SW_POWER_CAP) for s in busy) / len(busy):.0%}",
    }


COLUMNS = {
    "part": "part",
    "busy": "busy samples",
    "median_mhz": "median SM MHz",
    "mhz_range": "SM MHz range",
    "median_w": "median W",
    "max_w": "max W",
    "max_c": "max °C",
    "cap_share": "power-cap share",
}


def summarize(config: ClockSummaryConfig) -> str:
    samples = read_samples(config.clock_log)
    rows = [
        summarize_part(name, [s for s in samples if start <= s.time <= end], config.busy_watts)
        for name, (start, end) in read_parts(config.parts).items()
    ]
    return records_table(rows, COLUMNS)


def main(config: ClockSummaryConfig) -> None:
    table = summarize(config)
    os.makedirs(config.out_dir, exist_ok=True)
    write_text_atomic(os.path.join(config.out_dir, "clock_summary.md"), table + "\n")
    print(table)


if __name__ == "__main__":
    main(parse_config(ClockSummaryConfig, description=__doc__))
