"""Zero-shot math accuracy with the r1_zero prompt and reward: GSM8K, procedural problems, or MATH-style JSONL.

uv run python assignment5-alignment/scripts/evaluate_math.py --dataset gsm8k --limit 100 --max_tokens 256
Online: ... --policy.model Qwen/Qwen2.5-Math-1.5B --policy.dtype bfloat16 --policy.device cuda --policy.backend vllm \
    --dataset math.jsonl
"""

from __future__ import annotations

from cs336_alignment.evaluation.configs import MathEvalConfig
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    cfg = parse_config(MathEvalConfig)
    from cs336_alignment.evaluation.math_accuracy import evaluate_math_accuracy  # torch: after --help

    evaluate_math_accuracy(cfg)


if __name__ == "__main__":
    main()
