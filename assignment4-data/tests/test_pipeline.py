"""End to end: WARC shards built here -> filters -> dedup -> uint16 tokens, with counts, resumption and executors."""

import gzip
import html
import itertools
import operator

import numpy as np
import pytest
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path
from cs336_data.dedup.minhash import MinHashConfig
from cs336_data.gopher import gopher_quality_filter
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.executors import LocalExecutor, SlurmExecutor
from cs336_data.pipeline.run import PipelineConfig, run_pipeline
from cs336_data.pipeline.stats import PipelineStats
from cs336_data.quality_training import wikipedia_chunks
from cs336_data.warc_io import warc_record_bytes, write_warc


def _page(text: str) -> bytes:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n"))
    return f"<html><body><nav>Home | Contact</nav>{paragraphs}</body></html>".encode()


@pytest.fixture(scope="module")
def gpt2_files():
    try:
        return shared_path("fixtures/assignment1/gpt2_vocab.json"), shared_path("fixtures/assignment1/gpt2_merges.txt")
    except SharedDataUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture()
def corpus(tmp_path):
    chunks = list(itertools.islice((c for c in wikipedia_chunks() if gopher_quality_filter(c)), 8))
    near_dup = chunks[1].replace("the", "The", 1) + " Extra closing words."
    pages = [(f"http://wiki/{i}", _page(c)) for i, c in enumerate(chunks[:5])]
    pages += [
        ("http://copy", _page(near_dup)),
        ("http://zh", _page("欢迎来到我们的网站。" * 60)),
        ("http://empty", b""),
    ]
    pages += [("http://short", _page("Log in | Register | Cart"))]
    write_warc(tmp_path / "in" / "a.warc.gz", pages)
    write_warc(tmp_path / "in" / "b.warc.gz", [(f"http://wiki/{i}", _page(c)) for i, c in enumerate(chunks[5:])])
    whole = (tmp_path / "in" / "b.warc.gz").read_bytes()
    (tmp_path / "in" / "c.warc.gz").write_bytes(whole[: len(whole) - 200])  # truncated download of b: c5, c6, cut c7
    return sorted((tmp_path / "in").glob("*.warc.gz")), chunks


def test_pipeline_end_to_end_and_resume(tmp_path, corpus, gpt2_files):
    inputs, chunks = corpus
    config = PipelineConfig(
        inputs=inputs,
        out_dir=tmp_path / "out",
        vocab=gpt2_files[0],
        merges=gpt2_files[1],
        minhash=MinHashConfig(num_hashes=64, num_bands=16, ngrams=5, jaccard_threshold=0.8),
    )
    stats = run_pipeline(config, LocalExecutor(workers=1, progress=False))
    c = stats.counts
    # every step's counts balance, and each step sees exactly what the previous one kept
    for step in stats.order:
        if step != "tokenize":
            assert c[step]["in"] == c[step]["kept"] + c[step]["dropped"], step
    for prev, step in itertools.pairwise(stats.order):
        assert c[step]["in"] == c[prev]["kept"], (prev, step)
    assert c["read"]["in"] == 9 + 3 + 3 and c["read"]["dropped:truncated_record"] == 1
    assert c["extract"]["dropped:empty"] == 1
    assert c["language"]["dropped:other_language"] == 1  # the Chinese page
    assert c["gopher"]["dropped"] == c["gopher"]["dropped:word_count"] == 1  # the login page
    # Exact-line semantics: c5 and c6 occur in shards b and c, so every one of their lines goes, in both copies;
    # the navigation line repeated on every page goes too.
    assert c["exact_line_dedup"]["dropped:all_lines_duplicated"] == 4
    assert c["minhash_dedup"]["dropped"] == c["minhash_dedup"]["dropped:near_duplicate"] == 1  # the edited copy of c1
    finals = [
        Document.from_json(line)
        for p in sorted((tmp_path / "out" / "final").glob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    survivors = [chunks[i] for i in (0, 1, 2, 3, 4, 7)]
    assert len(finals) == c["tokenize"]["kept"] == len(survivors)
    assert [f.metadata["url"] for f in finals] == [f"http://wiki/{i}" for i in (0, 1, 2, 3, 4)] + ["http://wiki/2"]
    assert not any("Home | Contact" in f.text for f in finals)
    for final, chunk in zip(finals, survivors):
        if chunk is not chunks[1]:  # c1 shares its middle lines with its near-copy, so exact-line dedup cut them
            assert final.text.split() == chunk.split()  # resiliparse re-spaces paragraphs; the words are all there
    # tokens: every surviving document followed by <|endoftext|>, decodable back to its text
    from cs336_basics.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_files(*map(str, gpt2_files), special_tokens=["<|endoftext|>"])
    bins = sorted((tmp_path / "out" / "tokens").glob("*.bin"))
    ids = np.concatenate([np.memmap(b, dtype=np.uint16, mode="r") for b in bins])
    assert len(ids) == c["tokenize"]["tokens"]
    ids_of_shard_1 = np.fromfile(bins[1], dtype=np.uint16)
    assert tokenizer.decode(ids.tolist()) == "".join(f.text + "<|endoftext|>" for f in finals)
    assert (tmp_path / "out" / "stats.png").read_bytes()[:4] == b"\x89PNG"
    assert "| minhash_dedup | 7 | 6 | 1 |" in (tmp_path / "out" / "stats.md").read_text()

    # resume: all shards are marked done, a rerun recomputes nothing and reports the same counts
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tokens").iterdir()}
    again = run_pipeline(config, LocalExecutor(workers=1, progress=False))
    assert again.to_dict() == stats.to_dict()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tokens").iterdir()} == before
    # a run killed during shard 1's tokenisation: only that shard is redone, and the result is the same
    (tmp_path / "out" / "done" / "tokenize" / "000001").unlink()
    (tmp_path / "out" / "tokens" / "000001.bin").unlink()
    again = run_pipeline(config, LocalExecutor(workers=1, progress=False))
    assert again.to_dict() == stats.to_dict()
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tokens").iterdir()}
    assert {p: t for p, t in after.items() if p.name != "000001.bin"} == {
        p: t for p, t in before.items() if p.name != "000001.bin"
    }
    assert np.array_equal(np.fromfile(tmp_path / "out" / "tokens" / "000001.bin", dtype=np.uint16), ids_of_shard_1)


def test_stats_merge_table_and_plot(tmp_path):
    a, b = PipelineStats(), PipelineStats()
    a.add("gopher", "in", 10)
    a.add("gopher", "kept", 7)
    a.add("gopher", "dropped", 3)
    b.add("gopher", "in", 5)
    b.add("gopher", "kept", 5)
    a.merge(b)
    assert dict(a.counts["gopher"]) == {"in": 15, "kept": 12, "dropped": 3}
    assert "| gopher | 15 | 12 | 3 | 20.0 |" in a.table()
    a.plot(tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert PipelineStats.from_dict(a.to_dict()).to_dict() == a.to_dict()


def test_executors_preserve_order(tmp_path):
    items = list(range(6))
    assert LocalExecutor(workers=2, progress=False).map(abs, [-i for i in items], desc="t") == items
    slurm = SlurmExecutor(folder=str(tmp_path / "logs"), cluster="debug", progress=False)
    assert slurm.map(operator.neg, items, desc="t") == [-i for i in items]


def test_bad_input_is_counted_not_fatal(tmp_path):
    """A garbage archive, undecodable and empty pages: every document is accounted for, nothing raises."""
    chunk = next(c for c in wikipedia_chunks() if gopher_quality_filter(c))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "garbage.warc.gz").write_bytes(b"\x1f\x8b" + b"not a warc" * 100)
    pages = [("http://ok", _page(chunk)), ("http://bytes", b"\xff\xfe\x00\x81\x9d\x8f" * 50), ("http://empty", b"")]
    write_warc(tmp_path / "in" / "pages.warc.gz", pages)
    config = PipelineConfig(inputs=sorted((tmp_path / "in").iterdir()), out_dir=tmp_path / "out")
    c = run_pipeline(config, LocalExecutor(workers=1, progress=False)).counts
    assert c["read"]["error:corrupt_file"] == 1 and c["read"]["in"] == c["read"]["kept"] == 3
    assert c["extract"]["in"] == 3 and c["extract"]["dropped:empty"] >= 1
    for step in ("extract", "language", "gopher", "quality", "nsfw", "toxic", "exact_line_dedup", "minhash_dedup"):
        assert c[step]["in"] == c[step]["kept"] + c[step]["dropped"], step
        reasons = sum(n for k, n in c[step].items() if k.startswith("dropped:"))
        assert reasons == c[step]["dropped"], step  # every drop has a reason
    assert c["extract"]["dropped"] + c["language"]["dropped"] == 2  # the undecodable and the empty page
    assert c["minhash_dedup"]["kept"] == 1
    finals = (tmp_path / "out" / "final" / "000001.jsonl").read_text().splitlines()
    assert [Document.from_json(line).metadata["url"] for line in finals] == ["http://ok"]
    assert not (tmp_path / "out" / "tokens").exists()  # no tokenizer given: documents only


def test_damaged_members_are_counted_and_later_records_read(tmp_path):
    """An empty gzip member and a damaged one mid-shard: the pages after them still go through the pipeline."""
    chunks = list(itertools.islice((c for c in wikipedia_chunks() if gopher_quality_filter(c)), 4))
    members = [gzip.compress(warc_record_bytes(f"http://wiki/{i}", _page(c))) for i, c in enumerate(chunks)]
    (tmp_path / "in").mkdir()
    shard = tmp_path / "in" / "damaged.warc.gz"
    shard.write_bytes(members[0] + gzip.compress(b"") + members[1] + members[2][:50] + members[3])
    config = PipelineConfig(inputs=[shard], out_dir=tmp_path / "out")
    c = run_pipeline(config, LocalExecutor(workers=1, progress=False)).counts["read"]
    assert (c["in"], c["kept"], c["dropped:unreadable_record"], c["skipped:empty_gzip_member"]) == (4, 3, 1, 1)
    finals = (tmp_path / "out" / "final" / "000000.jsonl").read_text().splitlines()
    assert [Document.from_json(line).metadata["url"] for line in finals] == [
        "http://wiki/0",
        "http://wiki/1",
        "http://wiki/3",
    ]
