"""Instruction-following and safety evaluation sets whose outputs are judged outside this package:
AlpacaEval (by ``alpaca_eval`` with an LLM judge) and SimpleSafetyTests (by a safety classifier or a person)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

from cs336_basics.toolkit.data_paths import shared_path

from cs336_alignment.prompts import load_prompt
from cs336_alignment.sft_data import read_jsonl


def load_alpaca_eval() -> list[dict[str, Any]]:
    """The 805 AlpacaEval instructions (``instruction``, ``dataset``, reference ``output``, ``generator``)."""
    return read_jsonl(shared_path("data/alpaca_eval/alpaca_eval.jsonl"))


def load_simple_safety_tests() -> list[dict[str, str]]:
    """The 100 SimpleSafetyTests prompts (``prompts_final`` with ``id``, ``harm_area``, ``category``)."""
    path = shared_path("data/simple_safety_tests/simple_safety_tests.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "prompts_final" not in rows[0]:
        raise ValueError(f"{path} has no 'prompts_final' column")
    return rows


def instruction_prompt(instruction: str, system_template: str | None = None) -> str:
    """An instruction inside the supplement's zero-shot system prompt."""
    return (system_template or load_prompt("zero_shot_system_prompt")).format(instruction=instruction)


def alpaca_eval_records(examples: Sequence[dict[str, Any]], outputs: Sequence[str], generator: str) -> list[dict]:
    """The list ``alpaca_eval --model_outputs`` reads: instruction, output, generator and dataset per example."""
    return [
        {"instruction": e["instruction"], "output": o, "generator": generator, "dataset": e.get("dataset", "")}
        for e, o in zip(examples, outputs, strict=True)
    ]


def safety_records(rows: Sequence[dict[str, str]], outputs: Sequence[str], generator: str) -> list[dict]:
    return [
        {"id": r.get("id", ""), "prompts_final": r["prompts_final"], "output": o, "generator": generator}
        for r, o in zip(rows, outputs, strict=True)
    ]
