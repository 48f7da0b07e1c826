"""Accuracy of the offline classifiers on labelled text they were not trained on.

    uv run python assignment4-data/scripts/evaluate_classifiers.py --crawl assignment4-data/runs/crawl \\
        --out_dir assignment4-data/results

Harmful content on the Impermium insults data set, quality and language ID on the sample crawl's labelled pages,
toxic flags by kind of crawl page (see ``cs336_data.classifier_evaluation``). Writes
``<out_dir>/classifier_accuracy.json`` and ``.md``.
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_data.classifier_evaluation import EvaluateClassifiersConfig, evaluate_classifiers


def main() -> None:
    print(evaluate_classifiers(parse_config(EvaluateClassifiersConfig, description=__doc__)))


if __name__ == "__main__":
    main()
