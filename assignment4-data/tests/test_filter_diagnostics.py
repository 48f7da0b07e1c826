"""The first run's diagnostics: the Witten-Bell bigram against a hand-worked example and a dict-based reference, its
window sample, and the composition, removal and 12-word-piece counts on hand-built labelled pages."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cs336_data.filter_experiment.bigram import WittenBellBigram, random_windows
from cs336_data.filter_experiment.diagnostics import (
    DiagnoseConfig,
    bigram_cross_entropies,
    characters_by_part,
    check_characters,
    load_inputs,
    markdown,
    part_of,
    removal_by_part,
    shared_pieces,
)


def test_witten_bell_cross_entropy_matches_the_hand_worked_example():
    """Training window [0, 1, 0, 2], vocabulary of 4 ids; held-out [0, 1, 2, 3].

    Unigram: N = 4 tokens, T = 3 distinct ids, P(w) = (c(w) + 3/4) / 7: P(1) = P(2) = 1/4, P(3) = 3/28.
    Pairs 0→1, 1→0, 0→2: c(0) = 2, T(0) = 2; c(1) = 1, T(1) = 1; id 2 is never a history.
    P(1|0) = (1 + 2 · 1/4) / (2 + 2) = 3/8;  P(2|1) = (0 + 1 · 1/4) / (1 + 1) = 1/8;  P(3|2) = P(3) = 3/28.
    Cross-entropy = -(ln 3/8 + ln 1/8 + ln 3/28) / 3 = 1.76462... nats.
    """
    model = WittenBellBigram.fit(np.array([[0, 1, 0, 2]]), vocab_size=4)
    expected = -(math.log(3 / 8) + math.log(1 / 8) + math.log(3 / 28)) / 3
    assert model.cross_entropy(np.array([0, 1, 2, 3])) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.764621, abs=1e-6)


def brute_force_witten_bell(windows: list[list[int]], vocab_size: int, heldout: list[int]) -> float:
    """The same model from dicts and loops, token by token."""
    unigram, pairs = Counter(), Counter()
    for window in windows:
        unigram.update(window)
        pairs.update(zip(window, window[1:]))
    n, seen = sum(unigram.values()), len(unigram)
    history = Counter()
    followers: dict[int, set[int]] = {}
    for (v, w), c in pairs.items():
        history[v] += c
        followers.setdefault(v, set()).add(w)

    def p_unigram(w: int) -> float:
        return (unigram[w] + seen / vocab_size) / (n + seen)

    def p(v: int, w: int) -> float:
        if history[v] == 0:
            return p_unigram(w)
        t = len(followers[v])
        return (pairs[v, w] + t * p_unigram(w)) / (history[v] + t)

    return -sum(math.log(p(v, w)) for v, w in zip(heldout, heldout[1:])) / (len(heldout) - 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_witten_bell_matches_a_dict_based_reference(seed):
    rng = np.random.default_rng(seed)
    vocab = 12
    windows = rng.integers(0, vocab - 2, (5, 30))  # ids 10 and 11 never seen in training
    heldout = rng.integers(0, vocab, 200)
    model = WittenBellBigram.fit(windows, vocab)
    expected = brute_force_witten_bell(windows.tolist(), vocab, heldout.tolist())
    assert model.cross_entropy(heldout) == pytest.approx(expected, rel=1e-12)


def test_witten_bell_is_a_distribution_for_every_history():
    model = WittenBellBigram.fit(np.random.default_rng(3).integers(0, 5, (4, 16)), vocab_size=7)
    previous, following = np.repeat(np.arange(7), 7), np.tile(np.arange(7), 7)
    totals = model.probabilities(previous, following).reshape(7, 7).sum(axis=1)
    assert totals == pytest.approx(np.ones(7), abs=1e-12)  # seen histories, never-seen ids 5 and 6 as histories


def test_witten_bell_refuses_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 4\)"):
        WittenBellBigram.fit(np.array([[0, 4]]), vocab_size=4)
    with pytest.raises(ValueError, match="need at least 2 tokens"):
        WittenBellBigram.fit(np.array([[0, 1]]), vocab_size=4).cross_entropy(np.array([1]))


def test_random_windows_are_distinct_aligned_windows_of_the_corpus():
    tokens = np.arange(105, dtype=np.uint16)  # 10 whole windows of 10, 5 tokens left over
    windows = random_windows(tokens, 4, 10, seed=1)
    assert windows.shape == (4, 10)
    starts = windows[:, 0].tolist()
    assert all(s % 10 == 0 and s < 100 for s in starts) and len(set(starts)) == 4
    assert np.array_equal(windows, np.asarray(starts)[:, None] + np.arange(10))
    assert np.array_equal(np.sort(random_windows(tokens, 10, 10).ravel()), np.arange(100))  # all: every token once
    with pytest.raises(ValueError, match="cannot draw 11 windows of 10 from 105 tokens"):
        random_windows(tokens, 11, 10)


def doc(package: str) -> dict:
    return {"kind": "documentation", "source": f"{package}_1.0"}


LABELS = {
    "py": doc("python3.11-doc"),
    "dj": doc("python-django-doc"),
    "pg": doc("postgresql-doc-15"),
    "git": doc("git-doc"),
    "wiki": {"kind": "article", "source": "gensim:wikipedia"},
    "spam": {"kind": "spam", "source": "spamassassin:spam-1"},
    "de": {"kind": "translation", "source": "debian-reference-de_2.100"},
    "thread": {"kind": "forum", "source": "insults"},
}
RAW = {"py": 100, "dj": 200, "pg": 300, "git": 400, "wiki": 500, "spam": 0, "de": 60, "thread": 70}
FILTERS = ("extract", "language", "gopher", "quality", "nsfw", "toxic")


def verdicts(record_id: str, last: str) -> list[dict]:
    """Every filter keeps the page until ``last``; ``last`` drops it, or (``pii``) the page passes them all."""
    steps = FILTERS[: FILTERS.index(last)] if last in FILTERS else FILTERS
    decisions = [{"id": record_id, "step": step, "decision": "kept"} for step in steps]
    if last in FILTERS:
        return [*decisions, {"id": record_id, "step": last, "decision": f"dropped_by_{last}"}]
    return [*decisions, {"id": record_id, "step": "pii", "decision": "modified"}]


DECISIONS = [
    *verdicts("py", "language"),
    *verdicts("dj", "gopher"),
    *verdicts("pg", "pii"),  # in the output with 250 of its 300 characters: 50 removed as repeated lines
    *verdicts("git", "pii"),  # passes every filter, not in the output: a dedup dropped it whole
    *verdicts("wiki", "quality"),
    *verdicts("spam", "extract"),
    *verdicts("de", "language"),
    *verdicts("thread", "pii"),  # in the output whole
]
KEPT = {"pg": 250, "thread": 70}


def test_part_of_groups_english_documentation_by_manual_and_the_rest_by_kind():
    assert [part_of(LABELS[i]) for i in ("py", "dj", "pg", "git", "wiki", "spam", "de", "thread")] == [
        "Python + Django", "Python + Django", "PostgreSQL", "Git + Debian", "articles",
        "mail, spam, threads, thin", "translations", "mail, spam, threads, thin",
    ]  # fmt: skip
    assert part_of(doc("sqlite3-doc")) == "other documentation"


def test_characters_by_part_sums_each_part():
    parts = characters_by_part((LABELS[i], n) for i, n in RAW.items())
    assert parts == {
        "Python + Django": 300,
        "PostgreSQL": 300,
        "Git + Debian": 400,
        "other documentation": 0,
        "articles": 500,
        "mail, spam, threads, thin": 70,
        "translations": 60,
    }


def test_removal_by_part_charges_each_page_to_what_removed_it():
    assert removal_by_part(LABELS, RAW, DECISIONS, KEPT) == {
        "Python + Django": {"language": 100, "gopher": 200},
        "PostgreSQL": {"kept": 250, "dedup_lines": 50},
        "Git + Debian": {"dedup_pages": 400},
        "articles": {"quality": 500},
        "mail, spam, threads, thin": {"extract": 0, "kept": 70, "dedup_lines": 0},
        "translations": {"language": 60},
    }


def test_removal_by_part_refuses_logs_and_outputs_of_another_crawl():
    with pytest.raises(ValueError, match=r"1 crawl pages \(e.g. py\) have no decision"):
        removal_by_part(LABELS, RAW, [d for d in DECISIONS if d["id"] != "py"], KEPT)
    with pytest.raises(ValueError, match=r"1 output documents \(e.g. elsewhere\) are not crawl pages"):
        removal_by_part(LABELS, RAW, DECISIONS, {**KEPT, "elsewhere": 10})


def words(start: int, stop: int) -> str:
    return " ".join(f"w{i}" for i in range(start, stop))


def test_shared_pieces_counts_the_distinct_12_word_pieces_found_in_the_reference():
    # 24 words have 13 pieces; the reference holds w0..w15, so the pieces starting at w0..w4 (5), up to case and
    # punctuation; a repeated text adds no piece, and one under 12 words has none.
    reference = [words(0, 16).upper().replace(" ", ", ")]
    assert shared_pieces([words(0, 24), words(0, 24), words(100, 111)], reference) == (5, 13)


def test_bigram_cross_entropies_fit_equal_tokens_of_each_corpus():
    rng = np.random.default_rng(0)
    sizes = {"raw": 400, "filtered": 130, "filtered_no_quality": 250, "heldout_docs": 50, "heldout_articles": 50}
    tokens = {name: rng.integers(0, 8, n).astype(np.uint16) for name, n in sizes.items()}
    result = bigram_cross_entropies(tokens, vocab_size=8, window=16, seeds=[0, 1])
    assert (result["windows"], result["tokens"]) == (8, 128)  # 130 // 16 windows of every corpus
    only = WittenBellBigram.fit(tokens["filtered"][:128].reshape(8, 16), 8).cross_entropy(tokens["heldout_docs"])
    assert result["cross_entropy"]["filtered"]["heldout_docs"] == pytest.approx([only, only])  # smallest: whole
    assert len(set(result["cross_entropy"]["raw"]["heldout_docs"])) == 2  # the larger ones: a sample per seed


def test_markdown_reports_every_table():
    composition = {"raw": characters_by_part((LABELS[i], n) for i, n in RAW.items())}
    articles = {
        "gensim:lee": {"documents": 1, "characters": 25},
        "gensim:wikipedia": {"documents": 3, "characters": 75},
    }
    report = {
        "composition": composition,
        "heldout_articles": {
            "by_source": articles, "windows": 3, "context_length": 256, "pieces": 40,
            "pieces_in_quality_positives": 30, "quality_positive_texts": 9,
        },
        "removal": {"filtered": removal_by_part(LABELS, RAW, DECISIONS, KEPT)},
        "reads": {
            "budget": "1000", "tokens_trained": 1000,
            "corpora": {"raw": {"epochs": 0.5, "characters_read": {p: n * 1e3 for p, n in composition["raw"].items()}}},
        },
        "bigram": {
            "windows": 2, "window": 16, "tokens": 32, "seeds": [0, 1],
            "cross_entropy": {"raw": {"heldout_docs": [2.0, 2.5], "heldout_articles": [3.0, 3.0]}},
        },
    }  # fmt: skip
    text = markdown(report)
    # 1,630 raw characters: documentation 1,000, Python + Django 300, PostgreSQL 300, Git 400, articles 500, ...
    assert "| raw | 0.00 M | 61.3% | 18.4% | 18.4% | 24.5% | 30.7% | 4.3% | 3.7% |" in text
    assert "| PostgreSQL (0.0 M) | 0.0% | 0.0% | 0.0% | 0.0% | 16.7% | 83.3% |" in text  # extraction removed nothing
    assert "| gensim:wikipedia | 3 | 75 | 75.0% |" in text and "30 (75.0%) occur in the 9 texts" in text
    assert "| raw | 0.50 | 0.30 M | 0.30 M | 0.40 M | 0.50 M | 0.07 M | 0.06 M |" in text
    assert "| raw | 2.250 (0.500) | 3.000 (0.000) |" in text


def test_inputs_that_are_missing_or_not_the_token_files_sources_are_clear_errors(tmp_path: Path):
    config = DiagnoseConfig(crawl=tmp_path / "crawl", experiment=tmp_path / "experiment")
    with pytest.raises(FileNotFoundError, match="meta.json: run prepare_filter_experiment.py"):
        load_inputs(config)
    (tmp_path / "experiment" / "data").mkdir(parents=True)
    (tmp_path / "experiment" / "data" / "meta.json").write_text(json.dumps({"corpora": {}}))
    with pytest.raises(FileNotFoundError, match="holds no sample crawl: run build_sample_crawl.py"):
        load_inputs(config)
    meta = {"corpora": {"raw": {"characters": 1000}}}
    with pytest.raises(ValueError, match="raw: 999 characters .* 1,000 in meta.json"):
        check_characters("raw", 999, meta)
    with pytest.raises(ValueError, match="meta.json has no corpus 'filtered'"):
        check_characters("filtered", 999, meta)
