"""MMLU: load the subject CSVs, build the supplement's zero-shot prompt, and score parsed answers."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from cs336_basics.toolkit.data_paths import shared_path

from cs336_alignment.parsing import parse_mmlu_response
from cs336_alignment.prompts import load_prompt

_QUESTION = (
    "Answer the following multiple choice question about {subject}. Respond with a single sentence of the form "
    '"The correct answer is _", filling the blank with the letter corresponding to the correct answer '
    "(i.e., A, B, C or D).\n\nQuestion: {question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
)


@dataclass(frozen=True)
class MMLUExample:
    subject: str
    question: str
    options: tuple[str, str, str, str]
    answer: str


def load_mmlu(split: str, subjects: list[str] | None = None) -> list[MMLUExample]:
    """Every question of ``split`` (dev, val or test) from ``data/mmlu/<split>/<subject>_<split>.csv``."""
    if split not in ("dev", "val", "test"):
        raise ValueError(f"MMLU split must be dev, val or test, got {split!r}")
    directory = shared_path(f"data/mmlu/{split}")
    examples = []
    for path in sorted(Path(directory).glob(f"*_{split}.csv")):
        subject = path.name.removesuffix(f"_{split}.csv")
        if subjects and subject not in subjects:
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(row) != 6:
                    raise ValueError(f"{path}: expected 6 columns (question, 4 options, answer), got {len(row)}")
                examples.append(MMLUExample(subject.replace("_", " "), row[0], tuple(row[1:5]), row[5].strip()))
    if not examples:
        raise ValueError(f"no MMLU questions found in {directory} for subjects {subjects}")
    return examples


def mmlu_prompt(example: MMLUExample, system_template: str | None = None) -> str:
    """The question inside the supplement's zero-shot system prompt."""
    a, b, c, d = example.options
    question = _QUESTION.format(subject=example.subject, question=example.question, a=a, b=b, c=c, d=d)
    return (system_template or load_prompt("zero_shot_system_prompt")).format(instruction=question)


def score_mmlu(examples: list[MMLUExample], outputs: list[str]) -> tuple[dict[str, float], list[dict]]:
    """Accuracy, share of unparsable outputs, and one record per question."""
    records = []
    for example, output in zip(examples, outputs, strict=True):
        parsed = parse_mmlu_response({"subject": example.subject, "options": list(example.options)}, output)
        records.append(
            {
                "subject": example.subject,
                "question": example.question,
                "answer": example.answer,
                "output": output,
                "parsed": parsed,
                "correct": parsed == example.answer,
            }
        )
    count = len(records)
    metrics = {
        "accuracy": sum(r["correct"] for r in records) / count,
        "unparsed": sum(r["parsed"] is None for r in records) / count,
    }
    return metrics, records
