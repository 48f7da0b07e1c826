"""Where to resume reading a WARC after FastWARC stops early, and what was lost in between.

FastWARC stops at the first thing it cannot parse, sometimes silently: an empty gzip member (valid gzip) ends its
iteration as if the file ended there, and a damaged member, garbage between records or a record with a broken
header raises. :mod:`cs336_data.warc_io` then asks :func:`next_readable_offset` where the next readable record
starts, restarts FastWARC there, and counts what it skipped.

* gzip files: Common Crawl writes one gzip member per record, so a member is the unit of loss. Members are checked
  with zlib (header, deflate stream, CRC); an empty member is skipped and counted apart (it holds no record); a
  damaged or unparseable member is one lost record; reading resumes at the next offset where a whole member starts.
  A file that is one gzip member holding every record cannot be resumed inside: what follows the damage is lost.
* plain files: after the last whole record, anything but blank lines up to the next ``WARC/1.`` version line is
  one lost record (a broken record or garbage). A record cut short in the middle of a plain file cannot be detected: its
  declared length swallows the start of the next record.
"""

from __future__ import annotations

import enum
import mmap
import zlib
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 1 << 20
Buffer = bytes | mmap.mmap  # the whole file: slicing copies only the slice, ``find`` searches in place


class MemberKind(enum.Enum):
    WHOLE = "whole"  # a complete member with a non-empty payload
    EMPTY = "empty"  # a complete member with an empty payload
    DAMAGED = "damaged"  # not a gzip member here, or its deflate stream or CRC is wrong
    INCOMPLETE = "incomplete"  # the file ends inside the member


def probe_member(view: Buffer, start: int) -> tuple[MemberKind, int]:
    """What kind of gzip member starts at ``start``, and the offset where it ends (the file size if it does not)."""
    head = view[start : start + 3]
    if head != GZIP_MAGIC:
        cut_in_magic = head and start + len(head) == len(view) and GZIP_MAGIC.startswith(head)
        return (MemberKind.INCOMPLETE, len(view)) if cut_in_magic else (MemberKind.DAMAGED, start)
    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced, pos = False, start
    while pos < len(view):
        chunk = view[pos : pos + _CHUNK]
        try:
            produced |= bool(member.decompress(chunk))
        except zlib.error:
            return MemberKind.DAMAGED, pos
        if member.eof:
            end = pos + len(chunk) - len(member.unused_data)
            return (MemberKind.WHOLE if produced else MemberKind.EMPTY), end
        pos += len(chunk)
    return MemberKind.INCOMPLETE, len(view)


def next_member_start(view: Buffer, start: int) -> int | None:
    """The first offset at or after ``start`` where a complete gzip member (empty or not) begins, else None."""
    pos = view.find(GZIP_MAGIC, start)
    while pos != -1:
        if probe_member(view, pos)[0] in (MemberKind.WHOLE, MemberKind.EMPTY):
            return pos
        pos = view.find(GZIP_MAGIC, pos + 1)
    return None


@dataclass
class Loss:
    """Bytes ``[start, end)`` skipped. ``kind``: ``unreadable`` (one record lost), ``truncated`` (one record lost: the
    file ends inside it), ``empty`` (an empty gzip member, no record) or ``trailer`` (the last record was read whole
    but its gzip trailer is missing) or ``checksum`` (a member whose record was read fails its CRC): the last two lose
    nothing and are worth a warning."""

    kind: str
    start: int
    end: int
    why: str


@dataclass(frozen=True)
class LastRecord:
    """Where the last record FastWARC parsed starts, its declared block length, and whether it was cut short."""

    start: int
    content_length: int
    truncated: bool


def next_readable_offset(
    view: Buffer, compressed: bool, resumed_at: int, last: LastRecord | None, failed: bool
) -> tuple[int | None, list[Loss]]:
    """After FastWARC, started at ``resumed_at``, stopped (``failed``: by raising) having parsed ``last`` (None:
    nothing): the offset to restart it at (None: nothing readable is left) and the losses in between."""
    if compressed:
        return _next_gzip_offset(view, resumed_at, last, failed)
    return _next_plain_offset(view, resumed_at, last)


def _next_gzip_offset(
    view: Buffer, resumed_at: int, last: LastRecord | None, failed: bool
) -> tuple[int | None, list[Loss]]:
    losses: list[Loss] = []
    pos = resumed_at
    if last is not None:
        kind, end = probe_member(view, last.start)
        if kind is MemberKind.INCOMPLETE:
            if not last.truncated:  # the record was whole; only its member's trailer is missing
                losses.append(Loss("trailer", last.start, end, "gzip trailer of the last record is missing"))
            return None, losses
        if kind is MemberKind.DAMAGED and view[last.start : last.start + 3] != GZIP_MAGIC:
            # Records are not one per member (one member holds many): FastWARC's position is no member start and
            # nothing inside a deflate stream can be resumed. If FastWARC failed, what followed in it is lost.
            loss = Loss("unreadable", last.start, len(view), "damage inside a gzip member holding many records")
            return None, [loss] if failed else []
        if kind is MemberKind.DAMAGED:  # the record was read, then its member failed its check (CRC)
            resume = next_member_start(view, last.start + 1)
            return resume, [Loss("checksum", last.start, resume or len(view), "gzip member fails its check")]
        pos = end
    while pos < len(view):
        kind, end = probe_member(view, pos)
        if kind is MemberKind.EMPTY:
            losses.append(Loss("empty", pos, end, "empty gzip member"))
            pos = end
        elif kind is MemberKind.WHOLE and not (last is None and pos == resumed_at):
            return pos, losses  # FastWARC has not tried this member since the last record it read: let it
        elif kind is MemberKind.WHOLE:  # FastWARC was started here and read nothing
            losses.append(Loss("unreadable", pos, end, "gzip member whose content is not a WARC record"))
            pos = end
        else:
            resume = next_member_start(view, pos + 1)
            if resume is None and kind is MemberKind.INCOMPLETE:
                losses.append(Loss("truncated", pos, len(view), "archive ends inside a gzip member"))
            else:
                why = "damaged gzip data" if kind is MemberKind.DAMAGED else "gzip member cut short"
                losses.append(Loss("unreadable", pos, len(view) if resume is None else resume, why))
            if resume is None:
                return None, losses
            pos = resume
    return None, losses


def _next_plain_offset(view: Buffer, resumed_at: int, last: LastRecord | None) -> tuple[int | None, list[Loss]]:
    if last is not None and last.truncated:  # counted already; what follows its header is its own remains
        return _next_warc_start(view, last.start), []
    pos = resumed_at
    if last is not None:
        header_end = view.find(b"\r\n\r\n", last.start)
        if header_end == -1:
            return None, []
        pos = header_end + 4 + last.content_length
    while pos < len(view) and view[pos : pos + 1] in (b"\r", b"\n"):
        pos += 1
    if pos >= len(view):
        return None, []
    if last is not None and view[pos : pos + 5] == b"WARC/":
        return pos, []  # FastWARC has not tried this record since the last one it read: let it
    resume = _next_warc_start(view, pos)
    end = len(view) if resume is None else resume
    return resume, [Loss("unreadable", pos, end, "bytes that are not a WARC record")]


def _next_warc_start(view: Buffer, after: int) -> int | None:
    """The next ``WARC/1.`` version line after byte ``after``, wherever it starts (garbage need not end a line)."""
    found = view.find(b"WARC/1.", after + 1)
    return None if found == -1 else found
