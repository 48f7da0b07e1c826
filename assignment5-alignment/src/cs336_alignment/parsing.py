"""Parse free-form model outputs into benchmark answers (MMLU letters, GSM8K numbers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_LETTERS = "ABCD"
_ANSWER_IS_LETTER = re.compile(r"answer is[:\s]*\(?([ABCD])\)?(?![A-Za-z0-9])")
_LEADING_LETTER = re.compile(r"^\s*\(?([ABCD])(?:[.):]|\s*$)")
_ANSWER_IS_TEXT = re.compile(r"answer is[:\s]*(.+?)\s*\.?\s*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def parse_mmlu_response(mmlu_example: Mapping[str, Any], model_output: str) -> str | None:
    """The letter the output commits to: "answer is X", a leading "X.", or "answer is <option text>"."""
    match = _ANSWER_IS_LETTER.search(model_output) or _LEADING_LETTER.match(model_output)
    if match:
        return match.group(1)
    options = [str(o).strip().lower() for o in mmlu_example.get("options", [])]
    for text_match in _ANSWER_IS_TEXT.finditer(model_output):
        stated = text_match.group(1).strip().lower()
        if stated in options:
            return _LETTERS[options.index(stated)]
    return None


def parse_gsm8k_response(model_output: str) -> str | None:
    """The last number written with digits (thousands separators dropped), or None."""
    numbers = _NUMBER.findall(model_output)
    if not numbers:
        return None
    return numbers[-1].replace(",", "")


def gsm8k_ground_truth(answer_field: str) -> str:
    """GSM8K's gold answer: the text after ``####`` (commas removed)."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####' marker: {answer_field[-80:]!r}")
    return answer_field.split("####")[-1].strip().replace(",", "")
