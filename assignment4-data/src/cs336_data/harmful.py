"""NSFW and toxic-speech classification.

Two backends behind one callable interface returning ``(label, score)``:

* :class:`DolmaJigsawClassifier`: Dolma's Jigsaw fastText bigram models (``jigsaw_fasttext_bigrams_nsfw_final.bin``,
  ``jigsaw_fasttext_bigrams_hatespeech_final.bin``), the models the course uses, when their files are present
  (``make assets`` downloads them; paths from ``$CS336_NSFW_MODEL`` / ``$CS336_TOXIC_MODEL`` or the cache dir).
* :class:`ProfanityCheckClassifier`: the offline default. ``alt-profanity-check`` ships a linear SVM (calibrated,
  on a TF-IDF bag of words) trained on ~200k human-labelled comments (the Jigsaw toxic-comment data, the Dolma models'
  source, plus Davidson et al.'s hate-speech tweets). It needs no download and passes the course's sanity checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cs336_basics.toolkit.data_paths import cache_dir

from cs336_data.language_id import fasttext_top_label, load_fasttext_model

ENV_NSFW_MODEL = "CS336_NSFW_MODEL"
ENV_TOXIC_MODEL = "CS336_TOXIC_MODEL"
DOLMA_NSFW_FILE = "jigsaw_fasttext_bigrams_nsfw_final.bin"
DOLMA_TOXIC_FILE = "jigsaw_fasttext_bigrams_hatespeech_final.bin"
DOLMA_BASE_URL = "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"


class TextClassifier(Protocol):
    def __call__(self, text: str) -> tuple[str, float]: ...


def classifier_dir() -> Path:
    return cache_dir() / "classifiers"


@dataclass(frozen=True)
class HarmKind:
    """One harm category: its positive/negative labels and where its Dolma model lives."""

    name: str
    positive: str
    negative: str
    env_var: str
    dolma_file: str

    def dolma_model_path(self) -> Path:
        env = os.environ.get(self.env_var)
        return Path(env) if env else classifier_dir() / self.dolma_file


NSFW = HarmKind("nsfw", "nsfw", "non-nsfw", ENV_NSFW_MODEL, DOLMA_NSFW_FILE)
TOXIC = HarmKind("toxic", "toxic", "non-toxic", ENV_TOXIC_MODEL, DOLMA_TOXIC_FILE)


class DolmaJigsawClassifier:
    """Dolma's fastText model; its labels (``__label__nsfw`` / ``__label__non-nsfw``, likewise toxic) are ours."""

    def __init__(self, kind: HarmKind, model_path: str | os.PathLike | None = None):
        self.kind = kind
        self.model_path = str(model_path or kind.dolma_model_path())

    def __call__(self, text: str) -> tuple[str, float]:
        label, score = fasttext_top_label(load_fasttext_model(self.model_path), text)
        if label not in (self.kind.positive, self.kind.negative):
            raise ValueError(f"{self.model_path} gave label {label!r}, not a {self.kind.name} model")
        return label, max(score, 1e-12)


@lru_cache(maxsize=1)
def _profanity_model():
    """The vectorizer and calibrated SVM that ``alt-profanity-check`` ships (loaded once per process)."""
    import joblib
    import profanity_check

    data = Path(profanity_check.__file__).parent / "data"
    return joblib.load(data / "vectorizer.joblib"), joblib.load(data / "model.joblib")


class ProfanityCheckClassifier:
    """Offline default: P(offensive) from alt-profanity-check's model, thresholded at ``threshold``."""

    def __init__(self, kind: HarmKind, threshold: float = 0.5):
        self.kind = kind
        self.threshold = threshold

    def probability(self, texts: list[str]) -> list[float]:
        vectorizer, model = _profanity_model()
        return [float(p) for p in model.predict_proba(vectorizer.transform(texts))[:, 1]]

    def __call__(self, text: str) -> tuple[str, float]:
        p = self.probability([text])[0]
        if p >= self.threshold:
            return self.kind.positive, max(p, 1e-12)
        return self.kind.negative, max(1.0 - p, 1e-12)


def harm_classifier(kind: HarmKind, model_path: str | os.PathLike | None = None) -> TextClassifier:
    """Dolma's model when a path is given or its file is present, else the offline default."""
    if model_path is not None or kind.dolma_model_path().is_file():
        return DolmaJigsawClassifier(kind, model_path)
    return ProfanityCheckClassifier(kind)


def describe_harm_backend(kind: HarmKind, model_path: str | os.PathLike | None = None) -> str:
    """Which model :func:`harm_classifier` uses for ``kind``, and why (for logs and reports)."""
    if model_path is not None:
        return f"{kind.name}: Dolma Jigsaw fastText model {model_path} (given)"
    if kind.dolma_model_path().is_file():
        return f"{kind.name}: Dolma Jigsaw fastText model {kind.dolma_model_path()}"
    return (
        f"{kind.name}: offline alt-profanity-check SVM (no Dolma model at {kind.dolma_model_path()}; "
        f"`make assets` or ${kind.env_var} enables it)"
    )


def classify_nsfw(text: str) -> tuple[str, float]:
    return harm_classifier(NSFW)(text)


def classify_toxic_speech(text: str) -> tuple[str, float]:
    return harm_classifier(TOXIC)(text)
