"""Atomic file replacement whose temporaries a later write recognises and removes.

A file is written to ``.<name>.tmp-<random>`` in its own directory, flushed to disk and renamed over ``<name>``:
a reader sees the old file or the new one, never a mix. The writer holds an exclusive ``flock`` on its temporary
while writing. A writer killed mid-write (SIGKILL, out of memory, power loss) leaves its temporary behind, and the
kernel drops a dead process's locks; so the next write of the same target deletes every temporary of that target
that no live writer holds, and a concurrent writer's temporary is never touched.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

_MARK = ".tmp-"


def temporary_prefix(path: Path) -> str:
    """File-name prefix of ``path``'s temporaries: hidden, and naming the target."""
    return f".{path.name}{_MARK}"


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block exits normally; on an exception ``path`` is untouched.
    The new file gets the permissions of a normally created one (0666 less the umask, not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = _locked_temporary(path)
    with os.fdopen(fd, "wb") as f:  # closing the file releases the lock, after the rename
        try:
            yield f
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, value: Any, indent: int | None = 2) -> Path:
    """Write ``value`` as JSON (UTF-8, non-ASCII kept readable, a final newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """Write one JSON line per record (UTF-8, non-ASCII kept readable) to ``path`` atomically."""
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` left by writers that died; return what was deleted."""
    path = Path(path)
    prefix = temporary_prefix(path)
    removed = []
    for candidate in path.parent.glob(glob.escape(prefix) + "*"):
        if "." in candidate.name[len(prefix) :]:  # the temporary of another target, e.g. "<name>.tmp-x.bin"
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live writer holds it
            continue
        else:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def _locked_temporary(path: Path) -> tuple[int, str]:
    """Create and lock a temporary; retry if a concurrent cleaner deleted it before the lock was taken."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path))
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make a rename into ``directory`` itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
