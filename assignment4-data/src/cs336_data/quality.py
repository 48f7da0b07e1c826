"""fastText quality classifier: ``wiki`` (like pages Wikipedia links to) versus ``cc`` (low-quality web text).

The package ships a small quantised model (``assets/quality_fasttext.ftz``) that
``scripts/train_quality_classifier.py`` trains from real text available offline (see
:mod:`cs336_data.quality_training`); ``$CS336_QUALITY_MODEL`` or an argument points to another one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cs336_data.language_id import fasttext_top_label, load_fasttext_model

ENV_QUALITY_MODEL = "CS336_QUALITY_MODEL"
SHIPPED_QUALITY_MODEL = Path(__file__).parent / "assets" / "quality_fasttext.ftz"
HIGH_QUALITY_LABEL = "wiki"
LOW_QUALITY_LABEL = "cc"

_WHITESPACE = re.compile(r"\s+")


def fasttext_line(text: str) -> str:
    """The one-line lowercase form used both to train and to classify (fastText is case-sensitive and line-based)."""
    return _WHITESPACE.sub(" ", text.lower()).strip()


def default_quality_model_path() -> Path:
    env = os.environ.get(ENV_QUALITY_MODEL)
    return Path(env) if env else SHIPPED_QUALITY_MODEL


class QualityClassifier:
    """Label ``wiki`` or ``cc`` and the model's probability for that label."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        self.model_path = str(model_path or default_quality_model_path())

    def __call__(self, text: str) -> tuple[str, float]:
        return fasttext_top_label(load_fasttext_model(self.model_path), fasttext_line(text))

    def high_quality_probability(self, text: str) -> float:
        label, score = self(text)
        return score if label == HIGH_QUALITY_LABEL else 1.0 - score


def classify_quality(text: str) -> tuple[str, float]:
    return QualityClassifier()(text)
