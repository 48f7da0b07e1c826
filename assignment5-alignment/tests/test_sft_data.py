"""Packed SFT dataset and batch iterator, checked against a stream rebuilt from the sample file."""

import json
import math

import torch
from cs336_alignment.prompts import load_prompt
from cs336_alignment.sft_data import PackedSFTDataset, iterate_batches

from tests.conftest import shared_or_skip


def _sample_path():
    return shared_or_skip("fixtures/assignment5/sft_sample.jsonl")


def _expected_stream(tokenizer, path):
    template = load_prompt("alpaca_sft")
    stream = []
    for line in open(path):
        r = json.loads(line)
        text = template.replace("{instruction}", r["prompt"]).replace("{response}", r["response"])
        stream += [tokenizer.bos_token_id] + tokenizer.encode(text) + [tokenizer.eos_token_id]
    return stream


def test_packed_dataset_chunks_the_document_stream(gpt2_tokenizer):
    path = _sample_path()
    stream = _expected_stream(gpt2_tokenizer, path)
    ds = PackedSFTDataset(gpt2_tokenizer, path, seq_length=32, shuffle=False)
    assert len(ds) == (len(stream) - 1) // 32
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        ex = ds[i]
        assert ex["input_ids"].dtype == torch.int64 and ex["input_ids"].shape == (32,)
        assert ex["input_ids"].tolist() == stream[i * 32 : (i + 1) * 32]
        assert ex["labels"].tolist() == stream[i * 32 + 1 : (i + 1) * 32 + 1]


def test_shuffled_dataset_is_a_permutation_of_documents(gpt2_tokenizer):
    path = _sample_path()
    plain = PackedSFTDataset(gpt2_tokenizer, path, seq_length=16, shuffle=False)
    shuffled = PackedSFTDataset(gpt2_tokenizer, path, seq_length=16, shuffle=True, seed=3)
    assert len(plain) == len(shuffled)
    assert sorted(plain.tokens.tolist()) == sorted(shuffled.tokens.tolist())
    assert plain.tokens.tolist() != shuffled.tokens.tolist()


def test_iterate_batches_covers_an_epoch(gpt2_tokenizer):
    ds = PackedSFTDataset(gpt2_tokenizer, _sample_path(), seq_length=32, shuffle=False)
    loader = iterate_batches(ds, batch_size=8, shuffle=True)
    assert len(loader) == math.ceil(len(ds) / 8)
    seen = []
    for batch in loader:
        assert batch["input_ids"].shape[1] == 32 and batch["input_ids"].dtype == torch.int64
        seen += [tuple(row.tolist()) for row in batch["input_ids"]]
    assert sorted(seen) == sorted(tuple(ds[i]["input_ids"].tolist()) for i in range(len(ds)))
