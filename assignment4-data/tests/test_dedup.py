"""Exact-line and MinHash deduplication against the course fixtures and brute-force references."""

import random
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from cs336_data.dedup.exact_lines import ExactLineDeduplicator, exact_line_deduplicate_files
from cs336_data.dedup.minhash import MinHashConfig, MinHasher, minhash_deduplicate_files, same_bucket_groups
from cs336_data.dedup.normalize import jaccard, normalize_for_dedup, word_ngrams
from cs336_data.dedup.union_find import UnionFind

from .adapters import run_exact_line_deduplication, run_minhash_deduplication


def test_exact_line_dedup_fixtures(fixtures_dir, tmp_path):
    inputs = sorted((fixtures_dir / "documents_with_line_duplicates").glob("doc*.txt"))
    run_exact_line_deduplication(inputs, tmp_path)
    out = {p.name: p.read_text() for p in tmp_path.iterdir()}
    # doc1 == doc2 (one line each), "- home" in doc3/doc4, "- menu" in doc3/doc4: all removed everywhere.
    assert out == {
        "doc1.txt": "",
        "doc2.txt": "",
        "doc3.txt": "- back\n<Insert generic page content here for doc3.txt>\n",
        "doc4.txt": "<Insert generic page content here for doc4.txt>\n",
        "doc5.txt": "Document 5 doesn't have any line-level duplicates.\n",
    }


def test_exact_line_dedup_matches_counter_reference(tmp_path):
    rng = random.Random(0)
    vocab = [f"line {i}" for i in range(60)]
    files = []
    for f in range(6):
        lines = [rng.choice(vocab) + "\n" for _ in range(rng.randint(5, 40))]
        if f == 5:
            lines[-1] = lines[-1].rstrip("\n")  # last line without newline still counts as the same line
        path = tmp_path / "in" / f"f{f}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(lines))
        files.append(path)
    counts = Counter(line.rstrip("\n") for p in files for line in p.read_text().splitlines())
    exact_line_deduplicate_files(files, tmp_path / "out", num_buckets=3)
    for path in files:
        expected = "".join(ln for ln in path.read_text().splitlines(keepends=True) if counts[ln.rstrip("\n")] == 1)
        assert (tmp_path / "out" / path.name).read_text() == expected


def test_line_dedup_buckets_across_shards(tmp_path):
    dedup = ExactLineDeduplicator(tmp_path, num_buckets=4)
    dedup.add_shard(0, [b"a\n", b"b\n", b"c\n"])
    dedup.add_shard(1, [b"c\n", b"d\n", b"d"])
    assert dedup.reduce() == 2
    assert dedup.unique_lines([b"a\n", b"b\n", b"c\n", b"d\n", b"e\n"]) == [b"a\n", b"b\n", b"e\n"]


def test_minhash_dedup_exact_duplicates(fixtures_dir, tmp_path):
    inputs = sorted((fixtures_dir / "documents_with_line_duplicates").glob("doc*.txt"))
    run_minhash_deduplication(inputs, 100, 10, 5, 0.8, tmp_path)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 4 and ("doc1.txt" in kept) != ("doc2.txt" in kept)


def test_minhash_dedup_fuzzy_licences(fixtures_dir, tmp_path):
    inputs = sorted((fixtures_dir / "documents_with_fuzzy_duplicates").glob("*.txt"))
    run_minhash_deduplication(inputs, 500, 50, 5, 0.8, tmp_path)
    kept = {p.name for p in tmp_path.iterdir()}
    assert len(kept) == 2 and "pytorch_license.txt" in kept
    survivor = (kept - {"pytorch_license.txt"}).pop()
    assert survivor in ("rails_mit_license.txt", "react_mit_license.txt")
    assert (tmp_path / survivor).read_bytes() == (
        fixtures_dir / "documents_with_fuzzy_duplicates" / survivor
    ).read_bytes()


def test_normalisation():
    assert normalize_for_dedup("  Héllo,\tWORLD!  Ça  va? ") == "hello world ca va"
    assert word_ngrams("a b c d", 2) == {"a b", "b c", "c d"}
    assert word_ngrams("short", 5) == {"short"}
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def test_signature_agreement_estimates_jaccard():
    """Fraction of equal signature entries ~ true Jaccard (binomial, 1024 hashes: std < 0.016)."""
    rng = random.Random(1)
    words = [f"w{rng.randrange(10_000)}" for _ in range(600)]
    a = " ".join(words)
    b = " ".join(words[:400] + [f"x{i}" for i in range(200)])
    hasher = MinHasher(MinHashConfig(num_hashes=1024, num_bands=32, ngrams=3))
    estimate = float(np.mean(hasher.signature(a) == hasher.signature(b)))
    assert estimate == pytest.approx(jaccard(word_ngrams(a, 3), word_ngrams(b, 3)), abs=0.06)


def test_band_keys_equal_iff_bands_equal():
    hasher = MinHasher(MinHashConfig(num_hashes=8, num_bands=4, ngrams=1))
    sigs = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 9, 4, 5, 6, 7, 0]], dtype=np.uint64)
    keys = hasher.band_keys(sigs)
    assert list(keys[0] == keys[1]) == [True, False, True, False]


def test_same_bucket_groups():
    groups = [list(g) for g in same_bucket_groups(np.array([5, 1, 5, 2, 1, 5], dtype=np.uint64))]
    assert sorted(groups) == [[0, 2, 5], [1, 4]]


def test_union_find_clusters():
    uf = UnionFind(6)
    uf.union(4, 2)
    uf.union(2, 0)
    uf.union(5, 3)
    assert list(uf.first_of_each_set()) == [True, True, False, True, False, False]


def test_minhash_dedup_equals_brute_force_clusters(tmp_path):
    """With enough bands every pair above the threshold is found: survivors equal the all-pairs Jaccard clustering."""
    rng = random.Random(2)
    base = [[f"t{rng.randrange(5000)}" for _ in range(120)] for _ in range(8)]
    docs = []
    for words in base:
        docs.append(words)
        for _ in range(2):  # near-duplicates: a few word substitutions
            copy = list(words)
            for i in rng.sample(range(len(copy)), 3):
                copy[i] = f"r{rng.randrange(10**6)}"
            docs.append(copy)
    paths = []
    for i, words in enumerate(docs):
        paths.append(tmp_path / "in" / f"{i:03d}.txt")
        paths[-1].parent.mkdir(exist_ok=True)
        paths[-1].write_text(" ".join(words))
    config = MinHashConfig(num_hashes=200, num_bands=50, ngrams=3, jaccard_threshold=0.7)
    kept = {p.name for p in minhash_deduplicate_files(paths, config, tmp_path / "out", files_per_shard=7)}
    sets = [word_ngrams(" ".join(d), 3) for d in docs]
    uf = UnionFind(len(docs))
    for i, j in combinations(range(len(docs)), 2):
        if jaccard(sets[i], sets[j]) >= 0.7:
            uf.union(i, j)
    expected = {paths[i].name for i in np.flatnonzero(uf.first_of_each_set())}
    assert kept == expected and len(kept) == 8
