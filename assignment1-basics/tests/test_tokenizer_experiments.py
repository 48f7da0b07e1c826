"""The tokenizer experiments on tiny corpora: held-out samples, the numbers reported against the saved files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from cs336_basics.bpe import load_vocab_merges
from cs336_basics.experiment_corpus import Document, read_documents
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.tokenizer_experiments import (
    TokenizerExperimentsConfig,
    decodes_to,
    hold_out,
    run_tokenizer_experiments,
)

WORDS = "the cat dog ran sat big little happy park ball tree sun mom friend played jumped saw".split()


def story(rng: random.Random, sentences: int) -> str:
    return " ".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 9))).capitalize() + "." for _ in range(sentences))


@pytest.fixture
def corpora(tmp_path):
    rng = random.Random(0)
    tinystories = tmp_path / "stories.txt"
    stories = [story(rng, 4) for _ in range(25)]
    stories += stories[:5]  # exact copies, as in the course's sample
    tinystories.write_text("\n<|endoftext|>\n".join(stories), encoding="utf-8")
    docs = tmp_path / "docs"
    for package in ("manual", "dictionary"):
        (docs / package).mkdir(parents=True)
        for i in range(8):
            code = f"\n    $ apt-get install {package}-{i}\n    def f(x): return x * {i}\n"
            (docs / package / f"{i:03d}.txt").write_text(story(rng, 3) + code + "Éléphant — naïve café.\n")
    return tinystories, docs


def test_experiments_report_what_the_saved_tokenizers_and_token_files_give(tmp_path, corpora):
    tinystories, docs = corpora
    cfg = TokenizerExperimentsConfig(
        tinystories=str(tinystories),
        docs_dir=str(docs),
        work_dir=str(tmp_path / "work"),
        out_dir=str(tmp_path / "out"),
        tinystories_vocab_size=300,
        docs_vocab_size=330,
        sample_documents=3,
        throughput_bytes=2_000,
        num_workers=2,
        progress=False,
    )
    results = run_tokenizer_experiments(cfg)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == json.loads(json.dumps(results))
    assert "| tinystories |" in (tmp_path / "out" / "table.md").read_text()

    for name, documents, vocab_size in (("tinystories", 30, 300), ("docs", 16, 330)):
        corpus = results["corpora"][name]
        assert corpus["documents"] == documents and corpus["evaluation_documents_held_out"]
        training_text = (tmp_path / "work" / f"{name}_train.txt").read_text(encoding="utf-8")
        for held in corpus["evaluation_documents"]:  # held-out documents (and their copies) are not trained on
            assert held["start"] not in training_text

        vocab, merges = load_vocab_merges(
            tmp_path / "work" / f"{name}_bpe/vocab.json", tmp_path / "work" / f"{name}_bpe/merges.txt"
        )
        assert len(vocab) == vocab_size == results["vocabularies"][name]["vocab_size"]
        longest = results["vocabularies"][name]["longest_tokens"][0]
        assert longest["bytes"] == max(len(t) for t in vocab.values())

        tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
        memmap = results["throughput"][name]["tokenize_to_memmap"]
        ids = np.memmap(tmp_path / "work" / f"{name}_train.bin", dtype=np.uint16, mode="r")
        np.testing.assert_array_equal(ids, tokenizer.encode(training_text))
        assert memmap["tokens"] == len(ids) and memmap["decodes_to_input"]
        assert memmap["max_token_id"] == int(ids.max()) < vocab_size

        run = results["training"][name]
        assert run["peak_rss_trainer_mb"] > 0 and run["seconds"] > 0
        profile = results["profile"][name]
        assert sum(profile["phases_seconds"].values()) <= profile["cpu_seconds_under_profiler"]

    # Compression: total UTF-8 bytes over total tokens of the held-out documents, recounted here.
    _, held = hold_out(read_documents([str(docs)], include_gensim=False), 3, cfg.seed)
    assert [h["start"] for h in results["corpora"]["docs"]["evaluation_documents"]] == [d.text[:60] for d in held]
    work = tmp_path / "work" / "docs_bpe"
    docs_tokenizer = Tokenizer(*load_vocab_merges(work / "vocab.json", work / "merges.txt"))
    expected = sum(len(d.text.encode()) for d in held) / sum(len(docs_tokenizer.encode(d.text)) for d in held)
    assert results["compression"]["docs_tokenizer_on_docs"]["bytes_per_token"] == pytest.approx(expected)
    # The tokenizer trained on code-bearing documents compresses them better than the stories tokenizer does.
    compression = results["compression"]
    assert (
        compression["docs_tokenizer_on_docs"]["bytes_per_token"]
        > compression["tinystories_tokenizer_on_docs"]["bytes_per_token"]
    )


def test_hold_out_is_seeded_disjoint_and_drops_every_copy():
    documents = [Document("s", str(i % 20)) for i in range(40)]  # every text twice
    train, held = hold_out(documents, 5, seed=3)
    assert len(held) == len({d.text for d in held}) == 5 and len(train) == 30
    assert {d.text for d in train}.isdisjoint(d.text for d in held)
    assert {d.text for d in train} | {d.text for d in held} == {str(i) for i in range(20)}
    assert hold_out(documents, 5, seed=3) == (train, held)
    with pytest.raises(ValueError, match="cannot hold out 20 of 20 distinct"):
        hold_out(documents, 20, seed=0)


def test_corpus_with_too_few_distinct_documents_is_trained_whole(tmp_path, corpora):
    _, docs = corpora
    few = tmp_path / "few.txt"
    few.write_text("<|endoftext|>".join(["One cat sat.", "Two dogs ran.", "One cat sat."] * 10), encoding="utf-8")
    cfg = TokenizerExperimentsConfig(
        tinystories=str(few),
        docs_dir=str(docs),
        work_dir=str(tmp_path / "work"),
        out_dir=str(tmp_path / "out"),
        tinystories_vocab_size=1_000,
        docs_vocab_size=300,
        sample_documents=3,
        throughput_bytes=500,
        profile=False,
        progress=False,
    )
    results = run_tokenizer_experiments(cfg)
    corpus = results["corpora"]["tinystories"]
    assert not corpus["evaluation_documents_held_out"] and corpus["training_documents"] == 30
    assert [d["start"] for d in corpus["evaluation_documents"]] == ["One cat sat.", "Two dogs ran."]
    # BPE stops when no pair is left: every pre-token of the text has become one token.
    vocabulary = results["vocabularies"]["tinystories"]
    assert vocabulary["requested_vocab_size"] == 1_000 and vocabulary["vocab_size"] < 1_000
    assert results["compression"]["tinystories_tokenizer_on_tinystories"]["per_document_tokens"] == [4, 4]
    assert "NOT held out" in (tmp_path / "out" / "table.md").read_text()


def test_decodes_to_detects_a_changed_token(tmp_path):
    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    path = tmp_path / "t.txt"
    path.write_bytes(b"hello")
    ids = np.frombuffer(b"hello", dtype=np.uint8).astype(np.uint16)
    assert decodes_to(tokenizer, ids, path, block=2)
    assert not decodes_to(tokenizer, np.array([104, 101, 108, 108, 112], dtype=np.uint16), path, block=2)
    assert not decodes_to(tokenizer, ids[:4], path, block=2)  # the file has a byte more


def test_missing_documents_folder_names_the_build_command(tmp_path, corpora):
    tinystories, _ = corpora
    cfg = TokenizerExperimentsConfig(tinystories=str(tinystories), docs_dir=str(tmp_path / "nope"), progress=False)
    with pytest.raises(FileNotFoundError, match="debian_text.py"):
        run_tokenizer_experiments(cfg)
