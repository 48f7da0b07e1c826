"""WARC / WET reading on files built here, including truncated, damaged and padded ones.

Every damaged file is built from whole records whose contents are known, so the expected output is exact: every
readable record is read, and every lost one is counted (and logged) exactly once.
"""

import gzip
import random
import zlib

import pytest
from cs336_data.warc_io import ReadStats, iter_warc_responses, warc_record_bytes, write_warc

PAGES = [(f"http://example.com/{i}", f"<html><body><p>page {i} ünïcode</p></body></html>".encode()) for i in range(5)]
TEN = [(f"http://example.com/{i}", f"<html><body><p>page {i} of ten</p></body></html>".encode()) for i in range(10)]


def _read(path):
    stats = ReadStats()
    return [(p.url, p.body) for p in iter_warc_responses(path, stats)], stats


def _members(pages=TEN) -> list[bytes]:
    """One gzip member per record, like Common Crawl."""
    return [gzip.compress(warc_record_bytes(url, body), mtime=0) for url, body in pages]


def test_round_trip_gzip_and_plain(tmp_path):
    for compress in (True, False):
        path = tmp_path / f"a{int(compress)}.warc"
        write_warc(path, PAGES, compress=compress)
        got, stats = _read(path)
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
        got, stats = _read(path)
        assert got == PAGES[:4] or (cut < 20 and got == PAGES), cut  # the first bytes cut may be gzip's trailer
        assert stats.truncated_records + stats.corrupt_files == (len(got) == 4) and stats.errors, cut
        assert stats.unreadable_records == 0, cut


def test_empty_gzip_member_in_the_middle_hides_no_record(tmp_path):
    path = tmp_path / "e.warc.gz"
    members = _members()
    path.write_bytes(b"".join(members[:3]) + gzip.compress(b"") + b"".join(members[3:]))
    assert gzip.decompress(path.read_bytes()).count(b"WARC-Type: response") == 10  # a valid file: gzip reads all
    got, stats = _read(path)
    assert got == TEN
    assert (stats.records, stats.empty_members, stats.unreadable_records, stats.truncated_records) == (10, 1, 0, 0)
    assert len(stats.errors) == 1 and "empty gzip member" in stats.errors[0]


@pytest.mark.parametrize("damage", ["garbage", "zeros", "flipped"])
def test_damage_between_or_inside_members_loses_only_what_it_hits(tmp_path, damage):
    members = _members()
    if damage == "garbage":  # bytes between two members: every record survives
        data, expected = b"".join(members[:4]) + b"<garbage>" * 7 + b"".join(members[4:]), TEN
    elif damage == "zeros":  # padding between two members, as left by a botched concatenation
        data, expected = b"".join(members[:4]) + bytes(4096) + b"".join(members[4:]), TEN
    else:  # corrupt bytes inside member 4: that record is lost, the next ones are read
        bad = bytearray(members[4])
        bad[len(bad) // 2] ^= 0xFF
        data, expected = b"".join(members[:4]) + bytes(bad) + b"".join(members[5:]), TEN[:4] + TEN[5:]
    path = tmp_path / "d.warc.gz"
    path.write_bytes(data)
    got, stats = _read(path)
    assert got == expected
    assert stats.unreadable_records == 1 and stats.records == len(expected) and len(stats.errors) == 1


def test_every_cut_of_a_middle_member_loses_that_record_only(tmp_path):
    members = _members()
    path = tmp_path / "c.warc.gz"
    for keep in range(1, len(members[4])):  # member 4 cut short at every length, the next member follows it
        path.write_bytes(b"".join(members[:4]) + members[4][:keep] + b"".join(members[5:]))
        got, stats = _read(path)
        assert got == TEN[:4] + TEN[5:], keep
        assert (stats.unreadable_records, stats.truncated_records, stats.corrupt_files) == (1, 0, 0), keep
        assert len(stats.errors) == 1, keep


def test_member_that_is_not_a_warc_record_is_counted(tmp_path):
    members = _members()
    path = tmp_path / "n.warc.gz"
    not_warc = gzip.compress(b"this is not a WARC record\r\n" * 3)
    path.write_bytes(b"".join(members[:2]) + not_warc + b"".join(members[2:]))
    got, stats = _read(path)
    assert got == TEN and stats.unreadable_records == 1 and len(stats.errors) == 1


def test_records_of_other_types_are_skipped_not_lost(tmp_path):
    """Common Crawl WARCs interleave warcinfo, request and metadata records with the responses."""
    request = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    other = (
        b"WARC/1.0\r\nWARC-Type: request\r\nWARC-Record-ID: <urn:uuid:0>\r\nContent-Type: application/http; "
        b"msgtype=request\r\nContent-Length: " + str(len(request)).encode() + b"\r\n\r\n" + request + b"\r\n\r\n"
    )
    for compress in (True, False):
        chunks = []
        for url, body in TEN:
            for record in (other, warc_record_bytes(url, body)):
                chunks.append(gzip.compress(record) if compress else record)
        chunks.insert(7, b"\x00junk\x00" * 5)  # after a request record: reading resumes at the next record
        path = tmp_path / f"o{int(compress)}.warc"
        path.write_bytes(b"".join(chunks))
        got, stats = _read(path)
        assert got == TEN and stats.records == 10 and stats.unreadable_records == 1, compress


def test_plain_warc_with_garbage_and_a_broken_record(tmp_path):
    records = [warc_record_bytes(url, body) for url, body in TEN]
    broken = records[6].replace(b"WARC-Type: response", b"WARC-Type response")  # a header line without a colon
    path = tmp_path / "p.warc"
    path.write_bytes(
        b"".join(records[:3])
        + b"garbage line\r\n" * 3
        + b"".join(records[3:6])
        + broken
        + records[7]
        + b"".join(records[8:])
    )
    got, stats = _read(path)
    assert got == TEN[:6] + TEN[7:]
    assert stats.records == 9 and stats.unreadable_records + stats.truncated_records == 2 and len(stats.errors) == 2


def test_single_member_archive_is_read_and_its_damage_counted(tmp_path):
    """A file gzipped whole (one member holding every record) reads; cut short, it loses the rest, counted."""
    rng = random.Random(0)
    pages = [(f"http://example.com/{i}", rng.randbytes(2000).hex().encode()) for i in range(200)]
    data = gzip.compress(b"".join(warc_record_bytes(url, body) for url, body in pages))
    path = tmp_path / "s.warc.gz"
    path.write_bytes(data)
    got, stats = _read(path)
    assert got == pages and not stats.errors
    path.write_bytes(data[: len(data) * 9 // 10])
    got, stats = _read(path)
    assert got == pages[: len(got)] and 0 < len(got) < len(pages)
    assert stats.truncated_records + stats.unreadable_records == 1 and stats.errors


def test_garbage_file_is_reported_not_raised(tmp_path):
    for name, data in (("g.warc.gz", b"\x1f\x8b" + b"not a warc" * 50), ("g.warc", b"not a warc\n" * 50)):
        path = tmp_path / name
        path.write_bytes(data)
        got, stats = _read(path)
        assert got == [] and stats.corrupt_files == 1 and "unreadable" in stats.errors[0]
        assert stats.unreadable_records == stats.truncated_records == 0


def test_missing_and_empty_files(tmp_path):
    got, stats = _read(tmp_path / "missing.warc.gz")
    assert got == [] and stats.corrupt_files == 1
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    got, stats = _read(tmp_path / "empty.warc.gz")
    assert got == [] and not stats.errors
