"""Supervised fastText training that survives a known flaw of the trainer.

``fasttext-numpy2`` (0.10.x, the fastText build that works with NumPy 2) intermittently aborts supervised training
with ``RuntimeError: Encountered NaN.`` even on clean input and a single thread; on small files most attempts can
fail. An attempt that finishes is a normal model, so we retry a bounded number of times and then give up loudly.
"""

from __future__ import annotations

import os
from typing import Any

import fasttext

NAN_ERROR = "Encountered NaN"


def train_supervised(
    input_path: str | os.PathLike, max_attempts: int = 20, **params: Any
) -> fasttext.FastText._FastText:
    """``fasttext.train_supervised(input=input_path, **params)``, retried while fastText reports a spurious NaN."""
    for _ in range(max_attempts):
        try:
            return fasttext.train_supervised(input=str(input_path), **params)
        except RuntimeError as err:
            if NAN_ERROR not in str(err):
                raise
    raise RuntimeError(f"fastText training on {input_path} hit NaN {max_attempts} times in a row; lower lr or dim")
