"""The demo's pieces: the offline English corpus from gensim's data, and the whole pipeline on a tiny budget."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from cs336_basics.demo import DemoConfig, run_demo
from cs336_basics.english_corpus import END_OF_TEXT, lee_documents, wikipedia_documents, write_english_corpus
from cs336_basics.model_config import ModelConfig

pytest.importorskip("gensim")


def test_lee_news_documents_are_english_articles():
    documents = list(lee_documents())
    assert len(documents) == 350  # 300 background + 50 test articles
    assert all(len(d) > 200 and "\n" not in d for d in documents)
    assert "bushfire" in documents[0]
    assert any("£" in d for d in documents)  # lee.cor is Latin-1, decoded as such


def test_wikipedia_excerpt_is_reduced_to_prose():
    articles = list(islice(wikipedia_documents(), 5))
    assert articles[0].startswith("Anarchism is a political philosophy")
    for text in articles:
        for paragraph in text.split("\n\n"):
            assert len(paragraph) >= 80 and paragraph[0] not in "=*|{#:"
            assert "''" not in paragraph and "[[" not in paragraph


def test_corpus_split_keeps_every_document_once(tmp_path):
    files = write_english_corpus(tmp_path, include_wikipedia=False, valid_every=10)
    train = files.train.read_text(encoding="utf-8").split(END_OF_TEXT)
    valid = files.valid.read_text(encoding="utf-8").split(END_OF_TEXT)
    assert train[-1] == valid[-1] == ""  # every document ends with the separator
    assert len(train) - 1 == 315 and len(valid) - 1 == 35
    assert sorted(train[:-1] + valid[:-1]) == sorted(lee_documents())


def test_demo_pipeline_on_a_tiny_budget(tmp_path, capsys):
    tiny = ModelConfig(vocab_size=320, context_length=32, d_model=32, num_layers=1, num_heads=2, d_ff=64)
    cfg = DemoConfig(
        out_dir=str(tmp_path),
        iterations=60,  # a fixed number of steps: the result must not depend on the machine's speed
        include_wikipedia=False,
        model=tiny,
        batch_size=8,
        samples_max_tokens=8,
        threads=1,
        progress=False,
    )
    summary = run_demo(cfg)
    for name in ("vocab.json", "merges.txt", "train.bin", "valid.bin", "checkpoint.pt", "loss_curve.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    losses = [
        r["train_loss"]
        for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
        if "train_loss" in r
    ]
    assert losses[-1] < losses[0] - 0.5, losses  # ln(320) = 5.8 at the start
    assert summary["val_loss"] is not None and len(summary["samples"]) == 3
    printed = capsys.readouterr().out
    assert all(f">>> {prompt}" in printed for prompt, _ in summary["samples"])
