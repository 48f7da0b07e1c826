"""Math problems for SFT, expert iteration and GRPO: GSM8K (shared data or its public URL) and procedurally
generated arithmetic word problems, plus the r1_zero prompt and SFT target formats."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from cs336_basics.toolkit.data_paths import shared_path

from cs336_alignment.parsing import gsm8k_ground_truth
from cs336_alignment.prompts import load_prompt
from cs336_alignment.sft_data import read_jsonl

GSM8K_URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/{}.jsonl"
_CALCULATOR_NOTE = re.compile(r"<<[^>]*>>")


@dataclass(frozen=True)
class MathProblem:
    """A question, its verifiable final answer, and (when known) a worked solution for SFT."""

    question: str
    answer: str
    solution: str = ""


def load_gsm8k(split: str) -> list[MathProblem]:
    """GSM8K ``train`` or ``test``: the reasoning without calculator notes ``<<3*4=12>>``, the answer after ``####``."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    path = shared_path(f"data/gsm8k/{split}.jsonl", url=GSM8K_URL.format(split))
    problems = []
    for record in read_jsonl(path):
        reasoning = _CALCULATOR_NOTE.sub("", record["answer"].split("####")[0]).strip()
        problems.append(MathProblem(record["question"], gsm8k_ground_truth(record["answer"]), reasoning))
    return problems


GSM8K_TEST_SIZE = 1319


def gsm8k_test_subset_indices(size: int = 500, seed: int = 0, population: int = GSM8K_TEST_SIZE) -> list[int]:
    """The fixed evaluation subset: ``size`` distinct GSM8K test indices drawn with ``random.Random(seed)``, in
    draw order, so every prefix is itself a random subset (a shorter validation set inside the same problems).
    ``size == population`` is the whole test set. ``results/gsm8k_test_subset_500.json`` holds the default list."""
    if not 0 < size <= population:
        raise ValueError(f"subset size must be in 1..{population}, got {size}")
    return random.Random(seed).sample(range(population), size)


def gsm8k_test_subset(size: int = 500, seed: int = 0) -> tuple[list[int], list[MathProblem]]:
    """The fixed subset's indices and problems (see ``gsm8k_test_subset_indices``)."""
    problems = load_gsm8k("test")
    if len(problems) != GSM8K_TEST_SIZE:
        raise ValueError(f"expected {GSM8K_TEST_SIZE} GSM8K test problems, found {len(problems)}")
    indices = gsm8k_test_subset_indices(size, seed)
    return indices, [problems[i] for i in indices]


_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jamal", "Kira", "Leo")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "cookies", "stamps", "shells")


def _add_then_remove(rng: random.Random, top: int) -> MathProblem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, top), rng.randint(2, top)
    c = rng.randint(1, a + b - 1)
    total, left = a + b, a + b - c
    return MathProblem(
        f"{name} has {a} {item}. {name} gets {b} more and then gives away {c}. How many {item} does {name} have now?",
        str(left),
        f"{name} starts with {a} {item}. After getting {b} more, {name} has {a} + {b} = {total}. "
        f"After giving away {c}, {name} has {total} - {c} = {left}.",
    )


def _groups(rng: random.Random, top: int) -> MathProblem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    boxes, each = rng.randint(2, min(9, top)), rng.randint(2, min(12, top))
    total = boxes * each
    return MathProblem(
        f"{name} buys {boxes} boxes with {each} {item} in each box. How many {item} does {name} buy in total?",
        str(total),
        f"There are {boxes} boxes of {each} {item}, so {name} buys {boxes} * {each} = {total} {item}.",
    )


def _price(rng: random.Random, top: int) -> MathProblem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    count, price, paid_extra = rng.randint(2, min(9, top)), rng.randint(2, min(9, top)), rng.randint(1, top)
    cost = count * price
    paid = cost + paid_extra
    return MathProblem(
        f"{name} buys {count} {item} at ${price} each and pays with ${paid}. How much change does {name} get?",
        str(paid_extra),
        f"The {item} cost {count} * {price} = {cost} dollars. The change is {paid} - {cost} = {paid_extra} dollars.",
    )


def _share(rng: random.Random, top: int) -> MathProblem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    friends, each = rng.randint(2, min(8, top)), rng.randint(2, min(10, top))
    total = friends * each
    return MathProblem(
        f"{name} shares {total} {item} equally among {friends} friends. How many {item} does each friend get?",
        str(each),
        f"Each friend gets {total} / {friends} = {each} {item}.",
    )


_TEMPLATES = (_add_then_remove, _groups, _price, _share)


def arithmetic_word_problems(count: int, seed: int, max_number: int = 40) -> list[MathProblem]:
    """``count`` GSM8K-style one- and two-step word problems with exact answers, reproducible from ``seed``;
    operands stay at most ``max_number`` (products and sums may exceed it)."""
    if max_number < 2:
        raise ValueError(f"max_number must be at least 2, got {max_number}")
    rng = random.Random(seed)
    return [rng.choice(_TEMPLATES)(rng, max_number) for _ in range(count)]


def r1_zero_prompt(question: str, template: str | None = None) -> str:
    """The r1_zero prompt; it ends in ``<think>``, so a response continues the reasoning."""
    return (template or load_prompt("r1_zero")).format(question=question)


def r1_zero_target(problem: MathProblem, eos: str = "") -> str:
    """The SFT response in r1_zero format: reasoning, ``</think>``, then the answer in tags, then ``eos`` (the
    tokenizer's end-of-sequence text, so the policy also learns to stop there)."""
    if not problem.solution:
        raise ValueError(f"problem has no worked solution to train on: {problem.question[:60]!r}")
    return f" {problem.solution} </think> <answer> {problem.answer} </answer>{eos}"
