"""Rewards per second of our r1_zero reward (the grader GRPO, expert iteration and every evaluation call) against
``math-verify``, the field's answer checker, on real model responses: by default the 1,319 GSM8K test responses
of the third session's GRPO run, committed under results/. GRPO grades 256 rollouts a step; the table says how
long that takes, and how often the two graders agree.

    uv run python assignment5-alignment/benchmarks/bench_grader.py
Writes bench_grader.md and bench_grader.json.
"""

from __future__ import annotations

import gzip
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PACKAGE.parent / "assignment1-basics/src"), str(PACKAGE / "src")]

from cs336_alignment.math_grader import grade_answer_math_verify  # noqa: E402
from cs336_alignment.reports import write_report  # noqa: E402
from cs336_alignment.rewards import r1_zero_reward_fn  # noqa: E402
from cs336_basics.toolkit.cli import parse_config  # noqa: E402

DEFAULT_GENERATIONS = PACKAGE / "results/grpo/g16_lr_sweep/g16_lr_1e-5/generations.jsonl.gz"
COLUMNS = {
    "grader": "grader",
    "responses": "responses",
    "rewarded": "reward 1",
    "microseconds_each": "µs per response",
    "seconds_per_grpo_step": "s per 256 rollouts",
    "speedup": "vs math-verify",
    "agreement": "agrees with math-verify",
}


@dataclass
class GraderBenchConfig:
    """Our r1_zero reward against math-verify on the same responses."""

    generations: str = field(
        default=str(DEFAULT_GENERATIONS), metadata={"help": "JSONL(.gz) with response and ground_truth per line"}
    )
    repeats: int = field(default=3, metadata={"help": "timed passes over all responses (the median is reported)"})
    out_dir: str = field(default="runs/bench_grader", metadata={"help": "folder for the table and JSON"})


def load_responses(path: str) -> list[tuple[str, str]]:
    """``(response, ground_truth)`` pairs of a generations file; a clear error when there are none."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    pairs = [(r["response"], str(r["ground_truth"])) for r in records if "response" in r and "ground_truth" in r]
    if not pairs:
        raise ValueError(f"{path} holds no records with 'response' and 'ground_truth'")
    return pairs


def math_verify_reward(response: str, ground_truth: str) -> float:
    """The baseline: the same r1_zero format rule and answer extraction, with math-verify deciding equality."""
    if "</think> <answer>" not in response or "</answer>" not in response:
        return 0.0
    answer = response.split("<answer>")[-1].replace("</answer>", "").strip()
    return float(grade_answer_math_verify(answer, ground_truth))


def time_grader(grade: Callable[[str, str], float], pairs: list[tuple[str, str]], repeats: int):
    """Median seconds of a pass over ``pairs`` and the rewards of the last pass."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        rewards = [grade(response, truth) for response, truth in pairs]
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), rewards


def main() -> None:
    cfg = parse_config(GraderBenchConfig)
    if cfg.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {cfg.repeats}")
    pairs = load_responses(cfg.generations)
    ours_seconds, ours = time_grader(lambda r, t: r1_zero_reward_fn(r, t)["reward"], pairs, cfg.repeats)
    base_seconds, base = time_grader(math_verify_reward, pairs, cfg.repeats)
    agreement = sum(a == b for a, b in zip(ours, base)) / len(pairs)
    rows = []
    for name, seconds, rewards in (
        ("ours (r1_zero_reward_fn)", ours_seconds, ours),
        ("math-verify", base_seconds, base),
    ):
        rows.append(
            {
                "grader": name,
                "responses": len(pairs),
                "rewarded": int(sum(rewards)),
                "microseconds_each": 1e6 * seconds / len(pairs),
                "seconds_per_grpo_step": 256 * seconds / len(pairs),
                "speedup": base_seconds / seconds,
                "agreement": 1.0 if name == "math-verify" else agreement,
            }
        )
        print(f"{name}: {rows[-1]['microseconds_each']:.0f} µs per response, {rows[-1]['speedup']:.2f}x math-verify")
    disagree = [(r[-120:], t) for (r, t), a, b in zip(pairs, ours, base) if a != b]
    details = {"generations": cfg.generations, "repeats": cfg.repeats, "machine": platform.platform()}
    details["disagreements"] = [{"response_tail": r, "ground_truth": t} for r, t in disagree[:20]]
    path = write_report(cfg.out_dir, "bench_grader", "r1_zero reward: ours against math-verify", rows, COLUMNS, details)
    print(f"{len(disagree)} disagreements; table: {path}")


if __name__ == "__main__":
    main()
