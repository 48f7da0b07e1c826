"""Reading WARC / WET files with FastWARC, and writing small WARC files (tests, benchmarks, the sample crawl).

Damaged input never crashes a reader and never loses a record silently. A record whose payload is shorter than its
declared length (a truncated archive) is counted in :class:`ReadStats` and skipped. Where FastWARC stops early (an
empty gzip member, a damaged member, garbage between records, a broken header), :mod:`cs336_data.warc_recovery`
finds the next readable record, FastWARC resumes there, and what was skipped is counted; a file of which nothing
can be read is counted as corrupt. Every loss is logged and kept in ``ReadStats.errors``.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import mmap
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cs336_basics.toolkit.atomic import atomic_output
from fastwarc.warc import ArchiveIterator, WarcRecordType

from cs336_data.warc_recovery import LastRecord, Loss, next_readable_offset

logger = logging.getLogger(__name__)

_PAYLOAD_TYPES = (WarcRecordType.response, WarcRecordType.conversion)
_OTHER_TYPES = (
    WarcRecordType.warcinfo,
    WarcRecordType.request,
    WarcRecordType.metadata,
    WarcRecordType.resource,
    WarcRecordType.revisit,
    WarcRecordType.continuation,
)


@dataclass(frozen=True)
class WarcPayload:
    """One page: its record id, URL, and payload (HTML bytes of a response, or the text of a WET conversion)."""

    record_id: str
    url: str
    body: bytes
    is_extracted_text: bool


@dataclass
class ReadStats:
    """Per file or summed over files. Records of other types (request, metadata, warcinfo) are read and skipped."""

    records: int = 0  # response / conversion records read whole
    truncated_records: int = 0  # records cut short: the archive ends inside them
    unreadable_records: int = 0  # damaged gzip members, broken records, garbage between records: one record each
    empty_members: int = 0  # empty gzip members skipped (valid gzip holding no record)
    corrupt_files: int = 0  # files of which no record at all could be read
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.errors.append(message)
        logger.warning(message)


@dataclass
class _Run:
    """What one FastWARC pass parsed: the last record of any type (None: none)."""

    last: LastRecord | None = None


def iter_warc_responses(path: str | os.PathLike, stats: ReadStats | None = None) -> Iterator[WarcPayload]:
    """HTTP response payloads of a WARC, or the extracted text of a WET (``conversion`` records); gzip or plain."""
    stats = stats if stats is not None else ReadStats()
    try:
        with open(path, "rb") as f:
            view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
    except OSError as err:
        stats.corrupt_files += 1
        stats.fail(f"{path}: unreadable: {err}")
        return
    compressed, offset, parsed_any, losses = view[:2] == b"\x1f\x8b", 0, False, []
    try:
        while offset is not None and offset < len(view):
            run = _Run()
            failure: Exception | None = None
            try:
                yield from _read_from(path, offset, run, stats)
            except Exception as err:  # noqa: BLE001 - FastWARC / zlib errors on damaged archives: resume after them
                failure = err
            parsed_any |= run.last is not None
            offset, found = next_readable_offset(view, compressed, offset, run.last, failure is not None)
            if failure is not None:
                found = [dataclasses.replace(loss, why=f"{loss.why} (FastWARC: {failure})") for loss in found]
            losses += found
    finally:
        if isinstance(view, mmap.mmap):
            view.close()
    _count_losses(path, losses, parsed_any, stats)


def _read_from(path: str | os.PathLike, offset: int, run: _Run, stats: ReadStats) -> Iterator[WarcPayload]:
    """One FastWARC pass from byte ``offset`` to wherever it stops (the file's end, or damage)."""
    with open(path, "rb") as f:
        f.seek(offset)
        for record in ArchiveIterator(f, parse_http=False):  # positions of a seeked file object are absolute
            # A record cut inside its WARC headers has no known type: it may have been a page, so it is checked.
            wanted = record.record_type not in _OTHER_TYPES
            block_length = record.content_length  # parse_http makes it the payload's length
            if wanted and record.record_type == WarcRecordType.response:
                record.parse_http()
            body = record.reader.read() if wanted else b""
            truncated = wanted and _is_truncated(record, body)
            run.last = LastRecord(record.stream_pos, block_length, truncated)
            if not wanted:
                continue
            if not truncated and record.record_type not in _PAYLOAD_TYPES:
                stats.unreadable_records += 1
                stats.fail(f"{path}: record {record.record_id} at byte {record.stream_pos} has no valid WARC-Type")
                continue
            if truncated:
                stats.truncated_records += 1
                stats.fail(
                    f"{path}: record {record.record_id} truncated ({len(body)} of {record.content_length} bytes)"
                )
                continue
            stats.records += 1
            yield WarcPayload(
                record_id=record.record_id or "",
                url=record.headers.get("WARC-Target-URI", "") or "",
                body=body,
                is_extracted_text=record.record_type == WarcRecordType.conversion,
            )


def _count_losses(path: str | os.PathLike, losses: list[Loss], parsed_any: bool, stats: ReadStats) -> None:
    """Count and log what was skipped; a file that yielded no record at all is one corrupt file instead."""
    lost = [loss for loss in losses if loss.kind in ("unreadable", "truncated")]
    if lost and not parsed_any:
        stats.corrupt_files += 1
        stats.fail(f"{path}: unreadable: no WARC record could be read ({lost[0].why})")
        return
    for loss in losses:
        if loss.kind == "empty":
            stats.empty_members += 1
        elif loss.kind == "truncated":
            stats.truncated_records += 1
        elif loss.kind == "unreadable":
            stats.unreadable_records += 1
        suffix = " (one record lost)" if loss in lost else ""
        stats.fail(f"{path}: bytes {loss.start}-{loss.end}: {loss.why}{suffix}")


def _is_truncated(record, body: bytes) -> bool:
    """A cut inside the WARC headers leaves Content-Length missing or partial (FastWARC then reads an empty block);
    a cut inside the HTTP headers leaves them unparsed; a cut inside the payload leaves the body short."""
    declared = (record.headers.get("Content-Length") or "").strip()
    if not declared.isdigit():
        return True
    if record.record_type == WarcRecordType.response and record.http_headers is None:
        return True
    return len(body) < record.content_length


def _record(warc_type: str, record_id: str, content_type: str, block: bytes, url: str | None = None) -> bytes:
    target = f"WARC-Target-URI: {url}\r\n" if url is not None else ""
    head = (
        f"WARC/1.0\r\nWARC-Type: {warc_type}\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n{target}"
        f"WARC-Date: 2025-04-17T13:50:10Z\r\nContent-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def warc_record_bytes(url: str, payload: bytes, *, extracted_text: bool = False, record_id: str | None = None) -> bytes:
    """One WARC/1.0 record: an HTTP 200 ``response`` wrapping HTML, or a WET-style ``conversion`` holding text."""
    record_id = record_id or str(uuid.uuid4())
    if extracted_text:
        return _record("conversion", record_id, "text/plain", payload, url)
    http_head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(payload)}\r\n\r\n"
    return _record("response", record_id, "application/http; msgtype=response", http_head.encode() + payload, url)


def warc_request_bytes(url: str, record_id: str) -> bytes:
    """The ``request`` record a crawler writes before each response."""
    host = url.split("/")[2] if "://" in url else ""
    http = f"GET /{url.split('/', 3)[3] if url.count('/') >= 3 else ''} HTTP/1.1\r\nHost: {host}\r\n"
    http += "User-Agent: CCBot/2.0 (sample crawl)\r\nAccept: text/html\r\n\r\n"
    return _record("request", record_id, "application/http; msgtype=request", http.encode(), url)


def warcinfo_record_bytes(filename: str, record_id: str) -> bytes:
    """The ``warcinfo`` record that opens a WARC file."""
    info = f"software: cs336_data sample crawl\r\nformat: WARC File Format 1.0\r\nfilename: {filename}\r\n"
    return _record("warcinfo", record_id, "application/warc-fields", info.encode())


def write_warc(
    path: str | os.PathLike, pages: Iterable[tuple[str, bytes]], *, extracted_text: bool = False, compress: bool = True
) -> int:
    """Write ``(url, payload)`` pages as a WARC (one gzip member per record, like Common Crawl); returns the count."""
    count = 0
    with atomic_output(path) as out:
        for url, payload in pages:
            record = warc_record_bytes(url, payload, extracted_text=extracted_text)
            out.write(gzip.compress(record, compresslevel=6) if compress else record)
            count += 1
    return count
