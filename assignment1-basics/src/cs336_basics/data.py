"""Training batches from flat uint16 token files (``np.memmap``): random windows, next-token targets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from jaxtyping import Int
from torch import Tensor


def load_tokens(path: str | os.PathLike) -> np.memmap:
    """Memory-map a token file written by ``tokenize_dataset`` (little-endian uint16, no header)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {path} does not exist (tokenise a text file first)")
    size = path.stat().st_size
    if size == 0 or size % 2:
        raise ValueError(f"{path} holds {size} bytes; a uint16 token file needs a positive even size")
    return np.memmap(path, dtype="<u2", mode="r")


def largest_token_id(tokens: npt.NDArray[np.integer], chunk_tokens: int = 1 << 24) -> int:
    """The largest id in ``tokens``, read in chunks (a multi-GB memmap is never in memory at once)."""
    if len(tokens) == 0:
        raise ValueError("no tokens")
    return max(
        int(np.asarray(tokens[start : start + chunk_tokens]).max()) for start in range(0, len(tokens), chunk_tokens)
    )


def check_token_ids(
    tokens: npt.NDArray[np.integer], vocab_size: int, path: str | os.PathLike = "<tokens>", chunk_tokens: int = 1 << 24
) -> None:
    """Raise ``ValueError`` (naming the file, the id, its position and ``vocab_size``) unless every id is in
    ``[0, vocab_size)``.

    An out-of-range id would otherwise surface much later as an ``IndexError`` (or a CUDA assert) in the
    embedding, whenever a batch first happens to hold it. The whole array is scanned once, in chunks so a
    multi-GB memmap is never in memory at once: about a second per GB.
    """
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    signed = np.issubdtype(tokens.dtype, np.signedinteger)
    for start in range(0, len(tokens), chunk_tokens):
        chunk = np.asarray(tokens[start : start + chunk_tokens])
        if chunk.max() < vocab_size and (not signed or chunk.min() >= 0):
            continue
        position = int(np.flatnonzero((chunk >= vocab_size) | (chunk < 0))[0])
        raise ValueError(
            f"{os.fspath(path)}: token {start + position:,} is id {int(chunk[position])}, outside the vocabulary "
            f"[0, {vocab_size}): tokenised with a different tokenizer, or a wrong vocab_size?"
        )


def get_batch(
    dataset: npt.NDArray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    rng: np.random.Generator | None = None,
) -> tuple[Int[Tensor, "batch_size context_length"], Int[Tensor, "batch_size context_length"]]:
    """``batch_size`` windows with starts uniform over ``0 … len − context_length − 1``; ``y`` is ``x`` shifted by one.

    Only the sampled windows are read, so a multi-GB memmap is never loaded. Tensors are int64 on ``device``
    (pinned and copied asynchronously for CUDA); an unusable device raises rather than silently using the CPU.
    """
    if len(dataset) <= context_length:
        raise ValueError(f"dataset of {len(dataset)} tokens is too short for context_length={context_length}")
    rng = rng if rng is not None else np.random.default_rng()
    starts = rng.integers(0, len(dataset) - context_length, size=batch_size)
    windows = np.asarray(dataset[starts[:, None] + np.arange(context_length + 1)], dtype=np.int64)
    tokens = torch.from_numpy(windows)
    device = torch.device(device)
    if device.type == "cuda":
        tokens = tokens.pin_memory().to(device, non_blocking=True)
    else:
        tokens = tokens.to(device)
    return tokens[:, :-1], tokens[:, 1:]
