"""The sample crawl's pieces, on inputs built here (no package fetch): .deb reading, pages, shards, held-out text,
the cached-version check and the comparison with the recorded manifests."""

import io
import json
import logging
import random
import tarfile
from pathlib import Path

import pytest
from cs336_data.crawl import pages as P
from cs336_data.crawl import recorded
from cs336_data.crawl.build import PRESETS, CrawlConfig, Page, build_crawl, heldout_documents, write_shard
from cs336_data.crawl.recorded import check_against_recorded
from cs336_data.crawl.sources import _unescape_comment, deb_files, deb_version, fetch_debs
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.pii import mask_pii
from cs336_data.warc_io import ReadStats, iter_warc_responses


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _deb(path, files: dict[str, bytes]) -> None:
    """A real .deb layout: ar archive of debian-binary, control.tar.xz and data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz"):
        pass
    path.write_bytes(
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", control.getvalue())
        + _ar_member("data.tar.xz", data.getvalue())
    )


def test_deb_files_reads_the_data_archive(tmp_path):
    files = {
        "./usr/share/doc/pkg/index.html": b"<html>index</html>",
        "./usr/share/doc/pkg/odd.htm": b"<p>x</p>",
        "./usr/share/doc/pkg/README": b"text",
    }
    deb = tmp_path / "pkg-doc_1%3a2.0-1_all.deb"
    _deb(deb, files)
    got = dict(deb_files(deb, (".html", ".htm")))
    assert got == {k: v for k, v in files.items() if k.endswith((".html", ".htm"))}
    assert deb_version(deb) == "pkg-doc_1:2.0-1"


def test_contact_block_holds_exactly_what_pii_masking_finds():
    rng = random.Random(1)
    for _ in range(50):
        block, pii = P.contact_block(rng, "example.sample.invalid")
        text = extract_text_from_html_bytes(f"<html><body>{block}</body></html>".encode())
        _, counts = mask_pii(text)
        assert counts == {"emails": 1, "phone_numbers": 1, "ips": 1} and pii == {"email": 1, "phone": 1, "ip": 1}


def test_near_copy_keeps_most_text_and_changes_some():
    rng = random.Random(0)
    text = " ".join(f"word{i} alpha beta gamma version 3.11.2" for i in range(300))
    page = P.chrome(rng, "a.sample.invalid", "Title", P.paragraphs_html(text))
    copy = P.near_copy(rng, page, "mirror1.sample.invalid")
    a = set(extract_text_from_html_bytes(page).split())
    b = set(extract_text_from_html_bytes(copy).split())
    assert copy != page and len(a & b) / len(a | b) > 0.8


def test_insult_comments_unescape():
    assert _unescape_comment('"a\\nb"') == "a\nb"
    assert _unescape_comment('"caf\\xe9"') == "café"


def test_shard_round_trip_labels_and_determinism(tmp_path):
    rng = random.Random(0)
    pages = [
        Page(
            f"https://s.sample.invalid/{i}",
            P.chrome(rng, "s.sample.invalid", f"T{i}", f"<p>page {i}</p>"),
            {"kind": "thin"},
        )
        for i in range(5)
    ]
    hashes = write_shard(pages, "CC-SAMPLE-00000", tmp_path / "a")
    assert write_shard(pages, "CC-SAMPLE-00000", tmp_path / "b") == hashes  # byte-identical rebuild
    stats = ReadStats()
    read = list(iter_warc_responses(tmp_path / "a" / "CC-SAMPLE-00000.warc.gz", stats))
    assert [(r.url, r.body) for r in read] == [(p.url, p.html) for p in pages] and not stats.errors
    labels = [
        json.loads(line) for line in (tmp_path / "a" / "labels" / "CC-SAMPLE-00000.jsonl").read_text().splitlines()
    ]
    assert [label["record_id"] for label in labels] == [r.record_id for r in read]
    wet = list(iter_warc_responses(tmp_path / "a" / "CC-SAMPLE-00000.warc.wet.gz"))
    assert [w.body.decode() for w in wet] == [extract_text_from_html_bytes(p.html) for p in pages]


def test_heldout_documents_drop_lines_seen_in_the_crawl():
    body = "".join(
        f"<p>held-out sentence number {i} is long enough to count as a line of prose.</p>" for i in range(30)
    )
    page = Page(
        "https://h/1",
        f"<html><body><main>{body}</main></body></html>".encode(),
        {"kind": "documentation", "source": "x"},
    )
    crawl_text = "held-out sentence number 3 is long enough to count as a line of prose."
    [doc] = heldout_documents([page], [crawl_text])
    assert crawl_text not in doc["text"].splitlines() and "held-out sentence number 4" in doc["text"]
    assert doc["kind"] == "documentation"


def test_shipped_sample_crawl_is_whole_and_matches_its_manifest():
    import hashlib
    from pathlib import Path

    root = Path(__file__).parent.parent / "sample_crawl"
    manifest = json.loads((root / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    for name in ("CC-SAMPLE-00000.warc.gz", "CC-SAMPLE-00000.warc.wet.gz"):
        stats = ReadStats()
        assert len(list(iter_warc_responses(root / name, stats))) == manifest["pages"] and not stats.errors


def _manifest(versions: dict[str, str], key: str = "k", pages: int = 10, files: dict | None = None) -> dict:
    return {
        "config_key": key,
        "sources": [f"{name}_{version}" for name, version in versions.items()],
        "pages": pages,
        "files": files or {"CC-SAMPLE-00000.warc.gz": "a" * 64, "heldout.jsonl": "b" * 64},
    }


RECORDED_SOURCES = {"pkg-a": "1:2.0-1", "pkg-b": "15.20-1"}


@pytest.fixture
def recorded_dir(tmp_path) -> Path:
    """A recorded-manifests folder holding ``full.json``: config key ``k``, built from ``RECORDED_SOURCES``."""
    folder = tmp_path / "recorded"
    folder.mkdir()
    (folder / "full.json").write_text(json.dumps(_manifest(RECORDED_SOURCES)))
    return folder


def test_fetch_debs_stops_on_several_cached_versions_naming_the_recorded_one(tmp_path, monkeypatch, recorded_dir):
    debs = tmp_path / "debs"
    debs.mkdir()
    for name in ("pkg-b_15.9-1_all.deb", "pkg-b_15.20-1_all.deb", "other-doc_1.0_all.deb"):
        (debs / name).write_bytes(b"")  # never read: the check is on file names
    monkeypatch.setattr(recorded, "RECORDED_DIR", recorded_dir)
    monkeypatch.setattr("shutil.which", lambda _: pytest.fail("apt-get must not be called"))
    with pytest.raises(RuntimeError, match="several versions") as err:
        fetch_debs(("other-doc", "pkg-b"), debs)
    message = str(err.value)
    assert "pkg-b: pkg-b_15.20-1_all.deb, pkg-b_15.9-1_all.deb (recorded: 15.20-1)" in message
    assert "other-doc" not in message and "keep one" in message
    assert fetch_debs(("other-doc",), debs) == [debs / "other-doc_1.0_all.deb"]


def _warnings(caplog, manifest: dict, recorded_dir: Path) -> list[str]:
    with caplog.at_level(logging.WARNING, logger=recorded.__name__):
        check_against_recorded(manifest, Path("runs/crawl"), Path("debs"), recorded_dir)
    return [r.getMessage() for r in caplog.records]


def test_build_from_other_source_versions_warns_naming_each(caplog, recorded_dir):
    built = _manifest({**RECORDED_SOURCES, "pkg-b": "15.9-1"}, pages=12, files={"other": "c" * 64})
    [message] = _warnings(caplog, built, recorded_dir)
    assert "pkg-b: built 15.9-1, recorded 15.20-1" in message and "pkg-a" not in message
    assert "pages: built 12, recorded 10" in message and str(recorded_dir / "full.json") in message
    assert "`apt-get download pkg-b=15.20-1`" in message and "not byte-identical" not in message


def test_same_sources_other_hash_warns_that_the_build_is_not_byte_identical(caplog, recorded_dir):
    built = _manifest(RECORDED_SOURCES)
    built["files"]["heldout.jsonl"] = "c" * 64
    [message] = _warnings(caplog, built, recorded_dir)
    assert "not byte-identical" in message and "files that differ: heldout.jsonl." in message


def test_build_like_the_recorded_one_is_silent(caplog, recorded_dir):
    assert _warnings(caplog, _manifest(RECORDED_SOURCES), recorded_dir) == []


def test_build_of_an_unrecorded_config_is_silent(caplog, recorded_dir):
    assert _warnings(caplog, _manifest({"pkg-a": "3.0"}, key="custom", pages=3), recorded_dir) == []


def test_reused_build_is_checked_too(tmp_path, caplog, monkeypatch):
    config = CrawlConfig(out_dir=tmp_path / "crawl")
    finished = _manifest({**RECORDED_SOURCES, "pkg-b": "15.9-1"}, key=config.key())
    finished["files"]["HELDOUT-PAGES.warc.gz"] = "d" * 64  # what makes a build finished
    config.out_dir.mkdir()
    (config.out_dir / "manifest.json").write_text(json.dumps(finished))
    (tmp_path / "full.json").write_text(json.dumps(_manifest(RECORDED_SOURCES, key=config.key())))
    monkeypatch.setattr(recorded, "RECORDED_DIR", tmp_path)
    with caplog.at_level(logging.WARNING, logger=recorded.__name__):
        assert build_crawl(config) == finished
    assert "pkg-b: built 15.9-1, recorded 15.20-1" in caplog.text


def test_recorded_manifests_are_those_of_the_presets():
    """A preset changed without rebuilding its recorded manifest would silently never be compared."""
    manifests = {path.stem: manifest for path, manifest in recorded.recorded_manifests().items()}
    assert set(manifests) == {"full", "large"}
    for name, manifest in manifests.items():
        assert manifest["config_key"] == CrawlConfig(out_dir=Path("unused"), **PRESETS[name]).key(), name
