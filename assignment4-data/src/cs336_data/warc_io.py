"""Reading WARC / WET files with FastWARC, and writing small WARC files (tests, benchmarks, packaging HTML).

Damaged input never crashes a reader. A record whose payload is shorter than its declared length (a truncated
archive) is counted in :class:`ReadStats` and skipped; an archive FastWARC cannot parse at all is counted as corrupt.
Either way the reason is logged and kept in ``ReadStats.errors``.
"""

from __future__ import annotations

import gzip
import logging
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecordType

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarcPayload:
    """One page: its record id, URL, and payload (HTML bytes of a response, or the text of a WET conversion)."""

    record_id: str
    url: str
    body: bytes
    is_extracted_text: bool


@dataclass
class ReadStats:
    records: int = 0
    truncated_records: int = 0
    corrupt_files: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.errors.append(message)
        logger.warning(message)


def iter_warc_responses(path: str | os.PathLike, stats: ReadStats | None = None) -> Iterator[WarcPayload]:
    """HTTP response payloads of a WARC, or the extracted text of a WET (``conversion`` records); gzip or plain."""
    stats = stats if stats is not None else ReadStats()
    last_offset, seen_any, last_truncated = 0, False, False
    try:
        records = ArchiveIterator(
            str(path), record_types=WarcRecordType.response | WarcRecordType.conversion, parse_http=True
        )
        for record in records:
            body = record.reader.read()
            last_offset, seen_any = record.stream_pos, True
            last_truncated = _is_truncated(record, body)
            if last_truncated:
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
    except Exception as err:  # noqa: BLE001 - FastWARC / zlib errors on damaged archives: report, keep what was read
        stats.corrupt_files += 1
        stats.fail(f"{path}: unreadable after {stats.records} records: {err}")
        return
    incomplete = _first_incomplete_gzip_member(Path(path), last_offset)
    if incomplete is None:
        return
    if seen_any and incomplete == 0:
        if last_truncated:  # already counted
            return
        # The last record read was whole; only its gzip trailer is missing. Nothing lost, but worth a warning.
        stats.fail(f"{path}: gzip trailer of the last record is missing (truncated download?)")
    else:
        stats.truncated_records += 1
        stats.fail(f"{path}: archive ends inside a gzip member after {stats.records} records (truncated download?)")


def _is_truncated(record, body: bytes) -> bool:
    """A cut inside the WARC headers leaves Content-Length missing or partial (FastWARC then reads an empty block);
    a cut inside the HTTP headers leaves them unparsed; a cut inside the payload leaves the body short."""
    declared = (record.headers.get("Content-Length") or "").strip()
    if not declared.isdigit():
        return True
    if record.record_type == WarcRecordType.response and record.http_headers is None:
        return True
    return len(body) < record.content_length


def _first_incomplete_gzip_member(path: Path, offset: int) -> int | None:
    """Index (from ``offset``, the last record read) of the first gzip member cut short, or None if all are whole.

    FastWARC silently stops at a member cut short before any of its record could be parsed; only the tail after
    the last good record needs decompressing to notice. Uncompressed files are checked record by record instead.
    """
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
        f.seek(offset)
        data = f.read()
    index = 0
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            member.decompress(data)
        except zlib.error:
            return index
        if not member.eof:
            return index
        data = member.unused_data
        index += 1
    return None


def warc_record_bytes(url: str, payload: bytes, *, extracted_text: bool = False, record_id: str | None = None) -> bytes:
    """One WARC/1.0 record: an HTTP 200 ``response`` wrapping HTML, or a WET-style ``conversion`` holding text."""
    if extracted_text:
        block, warc_type, content_type = payload, "conversion", "text/plain"
    else:
        http_head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(payload)}\r\n\r\n"
        block, warc_type, content_type = http_head.encode() + payload, "response", "application/http; msgtype=response"
    head = (
        f"WARC/1.0\r\nWARC-Type: {warc_type}\r\nWARC-Record-ID: <urn:uuid:{record_id or uuid.uuid4()}>\r\n"
        f"WARC-Target-URI: {url}\r\nWARC-Date: 2025-04-17T13:50:10Z\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def write_warc(
    path: str | os.PathLike, pages: Iterable[tuple[str, bytes]], *, extracted_text: bool = False, compress: bool = True
) -> int:
    """Write ``(url, payload)`` pages as a WARC (one gzip member per record, like Common Crawl); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with open(tmp, "wb") as out:
        for url, payload in pages:
            record = warc_record_bytes(url, payload, extracted_text=extracted_text)
            out.write(gzip.compress(record, compresslevel=6) if compress else record)
            count += 1
    os.replace(tmp, path)
    return count
