"""WARC / WET reading on files built here, including truncated and corrupt ones."""

import zlib

from cs336_data.warc_io import ReadStats, iter_warc_responses, write_warc

PAGES = [(f"http://example.com/{i}", f"<html><body><p>page {i} ünïcode</p></body></html>".encode()) for i in range(5)]


def test_round_trip_gzip_and_plain(tmp_path):
    for compress in (True, False):
        path = tmp_path / f"a{int(compress)}.warc"
        write_warc(path, PAGES, compress=compress)
        stats = ReadStats()
        got = [(p.url, p.body) for p in iter_warc_responses(path, stats)]
        assert got == PAGES and stats.records == 5 and not stats.errors


def test_wet_conversion_records(tmp_path):
    path = tmp_path / "x.warc.wet.gz"
    write_warc(path, [("http://a", b"plain text one"), ("http://b", b"zwei")], extracted_text=True)
    records = list(iter_warc_responses(path))
    assert [r.body for r in records] == [b"plain text one", b"zwei"]
    assert all(r.is_extracted_text for r in records)


def _gzip_member_sizes(data: bytes) -> list[int]:
    sizes = []
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        member.decompress(data)
        sizes.append(len(data) - len(member.unused_data))
        data = member.unused_data
    return sizes


def test_truncated_archive_counts_the_cut_record(tmp_path):
    path = tmp_path / "t.warc.gz"
    write_warc(path, PAGES)
    data = path.read_bytes()
    last_member = _gzip_member_sizes(data)[-1]
    for cut in range(1, last_member):  # every cut point inside the last record's gzip member
        path.write_bytes(data[: len(data) - cut])
        stats = ReadStats()
        got = [(p.url, p.body) for p in iter_warc_responses(path, stats)]
        assert got == PAGES[:4] or (cut < 20 and got == PAGES), cut  # the first bytes cut may be gzip's trailer
        assert stats.truncated_records + stats.corrupt_files == (len(got) == 4) and stats.errors, cut


def test_garbage_file_is_reported_not_raised(tmp_path):
    path = tmp_path / "g.warc.gz"
    path.write_bytes(b"\x1f\x8b" + b"not a warc" * 50)
    stats = ReadStats()
    assert list(iter_warc_responses(path, stats)) == []
    assert stats.corrupt_files == 1 and "unreadable" in stats.errors[0]
