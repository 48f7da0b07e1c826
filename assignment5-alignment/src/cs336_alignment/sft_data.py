"""Packed instruction-tuning data: Alpaca-formatted documents joined into one token stream, cut into chunks."""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cs336_alignment.prompts import format_alpaca, load_prompt
from cs336_alignment.tokenization import encode_texts, eos_token_id


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSON-lines file (``.gz`` allowed), with the line number in any parse error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err})") from err
    return records


class PackedSFTDataset(Dataset):
    """``{"input_ids", "labels"}`` chunks of ``seq_length`` tokens from a stream of Alpaca documents.

    Each ``{"prompt", "response"}`` record becomes ``BOS + template(prompt, response) + EOS``; documents are
    concatenated (shuffled first when ``shuffle``), and example ``i`` is ``stream[i*L:(i+1)*L]`` with labels
    shifted by one. The incomplete tail is dropped.
    """

    def __init__(self, tokenizer: Any, dataset_path: str | os.PathLike, seq_length: int, shuffle: bool, seed: int = 0):
        if seq_length < 1:
            raise ValueError(f"seq_length must be positive, got {seq_length}")
        records = read_jsonl(dataset_path)
        for number, record in enumerate(records, 1):
            if "prompt" not in record or "response" not in record:
                raise ValueError(f"{dataset_path}: record {number} lacks 'prompt' or 'response'")
        if shuffle:
            random.Random(seed).shuffle(records)
        template = load_prompt("alpaca_sft")
        documents = encode_texts(tokenizer, [format_alpaca(r["prompt"], r["response"], template) for r in records])
        bos, eos = getattr(tokenizer, "bos_token_id", None), eos_token_id(tokenizer)
        stream: list[int] = []
        for doc in documents:
            stream.extend(([bos] if bos is not None else []) + doc + ([eos] if eos is not None else []))
        self.seq_length = seq_length
        self.tokens = torch.tensor(stream, dtype=torch.long)
        self.num_examples = max(0, (len(stream) - 1) // seq_length)

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < self.num_examples:
            raise IndexError(f"index {i} out of range for {self.num_examples} examples")
        start = i * self.seq_length
        return {
            "input_ids": self.tokens[start : start + self.seq_length],
            "labels": self.tokens[start + 1 : start + self.seq_length + 1],
        }


def iterate_batches(dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
    """One epoch of stacked batches; ``len`` is ``ceil(len(dataset) / batch_size)``, the last may be smaller."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)


def cycle(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches, reshuffling each epoch when the loader shuffles."""
    while True:
        yield from loader
