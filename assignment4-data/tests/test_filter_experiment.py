"""The experiment's data options: raw cut to a filtered corpus's unique tokens, and held-out text drawn like the
filtered output with its overlap with the training text and the quality classifier's positives removed."""

from __future__ import annotations

import numpy as np
import pytest
from cs336_data.filter_experiment.heldout import OverlapChecks, build_references, clean_heldout
from cs336_data.filter_experiment.prepare import cut_to_tokens
from cs336_data.pipeline.document import Document

EOS = 9


def corpus(lengths: list[int]) -> np.ndarray:
    """Documents of the given lengths (EOS included); document i holds the id i % 9."""
    return np.concatenate([np.r_[np.full(n - 1, i % 9), EOS] for i, n in enumerate(lengths)]).astype(np.uint16)


def test_cut_to_tokens_takes_whole_random_documents_up_to_exactly_the_target():
    tokens = corpus([5, 7, 3, 9, 4, 6, 8])
    cut = cut_to_tokens(tokens, EOS, 20, seed=3)
    assert len(cut) == 20 and cut.dtype == np.uint16
    assert np.array_equal(cut, cut_to_tokens(tokens, EOS, 20, seed=3))
    assert not np.array_equal(cut, cut_to_tokens(tokens, EOS, 20, seed=4))
    ends = np.flatnonzero(cut == EOS) + 1
    pieces = np.split(cut, ends)
    whole, last = pieces[:-1], pieces[-1]
    originals = {tuple(p) for p in np.split(tokens, np.flatnonzero(tokens == EOS) + 1)[:-1]}
    assert all(tuple(p) in originals for p in whole)  # whole documents, none twice
    assert len({tuple(p) for p in whole}) == len(whole)
    assert any(o[: len(last)] == tuple(last) for o in originals)  # the last one is a document's beginning
    assert len(cut_to_tokens(tokens, EOS, len(tokens))) == len(tokens)


def test_cut_to_tokens_refuses_more_than_the_corpus():
    with pytest.raises(ValueError, match="cannot cut"):
        cut_to_tokens(corpus([5, 5]), EOS, 11)


def sentence(seed: int, words: int = 40) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(f"w{int(i)}" for i in rng.integers(0, 10_000, words))


def test_clean_heldout_removes_shared_lines_and_drops_copies_of_training_or_positive_text():
    chrome = "Home | Docs | Downloads | Contact"
    training = [f"{chrome}\n{sentence(1)}\n{sentence(2)}", f"{chrome}\n{sentence(3)}\n{sentence(4)}"]
    positives = [f"{sentence(5)} {sentence(6)} {sentence(7)}"]
    clean = f"{chrome}\n{sentence(10)}\n{sentence(11)}"
    copied_positive = f"{sentence(6)} {sentence(7)}"  # inside a longer positive: Jaccard 2/3, all contained
    near_copy = f"{sentence(1)} {sentence(2)}".replace("w", "W", 1)  # lines differ from training's, text does not
    inside_training = " ".join(sentence(3).split()[:30])  # shares no line, but every 12-word piece is in training
    too_short = f"{chrome}\n{sentence(2)}\nshort own line"
    documents = [
        Document(str(i), text, {"url": f"https://example.invalid/{i}"})
        for i, text in enumerate([clean, copied_positive, near_copy, inside_training, too_short])
    ]
    labels = {"https://example.invalid/0": {"kind": "documentation", "source": "pkg-doc_1.0"}}
    labels["https://example.invalid/1"] = {"kind": "article", "source": "gensim:lee"}
    references = build_references({"raw": training, "quality_positives": positives}, OverlapChecks())
    texts, report = clean_heldout(documents, labels, references, OverlapChecks(min_chars=100))
    assert texts == [f"{sentence(10)}\n{sentence(11)}"]  # the chrome line occurs in training: removed
    assert report["documents"] == 1 and report["pages_kept_by_pipeline"] == 5
    assert report["dropped"] == {
        "contained:quality_positives": 1,
        "contained:raw": 1,
        "near_duplicate:raw": 1,
        "short_after_shared_lines_removed": 1,
    }
    assert report["dropped_by_kind"]["contained:quality_positives"] == {"article": 1}
    assert report["dropped_by_kind"]["contained:raw"] == {"unknown": 1}
    assert report["lines_removed_as_shared"] == 3  # the clean document's chrome, the short one's chrome and sentence
    assert report["documents_by_kind"] == {"documentation": 1} and report["characters_by_source"] == {
        "pkg-doc": len(texts[0])
    }
    kept_overlap = report["overlap_of_kept"]["raw"]
    assert kept_overlap["largest_contained"] == 0 and kept_overlap["documents_sharing_a_piece"] == 0
