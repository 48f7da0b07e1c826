"""MMLU letter and GSM8K number parsing."""

import pytest
from cs336_alignment.parsing import gsm8k_ground_truth, parse_gsm8k_response, parse_mmlu_response

EXAMPLE = {
    "subject": "virology",
    "question": "How many human polyomaviruses are known at present?",
    "options": ["100", "1", "10", "unknown"],
    "answer": "A",
}


@pytest.mark.parametrize(
    "output, expected",
    [
        ("The correct answer is B. There is only one human polyomavirus known.", "B"),
        ("The correct answer is (C).", "C"),
        ("the correct answer is: D", "D"),
        ("A. 100", "A"),
        ("The correct answer is unknown.", "D"),
        ("The correct answer is 10000 polyomaviruses.", None),
        ("A national holiday is the answer", None),
        ("I am not sure.", None),
    ],
)
def test_parse_mmlu(output, expected):
    assert parse_mmlu_response(EXAMPLE, output) == expected


@pytest.mark.parametrize(
    "output, expected",
    [
        ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72", "72"),
        ("The total is 1,250 dollars.", "1250"),
        ("It drops to -3 degrees.", "-3"),
        ("She pays $2.50 per egg.", "2.50"),
        ("Natalia sold twenty-four clips in May and seventy-two in total.", None),
    ],
)
def test_parse_gsm8k(output, expected):
    assert parse_gsm8k_response(output) == expected


def test_gsm8k_ground_truth():
    assert gsm8k_ground_truth("She makes 9 * 2 = $18.\n#### 1,018") == "1018"
    with pytest.raises(ValueError, match="####"):
        gsm8k_ground_truth("no marker")
