"""Locate and download the course's data files: the one place every package's tests and scripts look for them.

Lookup order for a path relative to the shared folder (for example ``fixtures/assignment1/corpus.en``):

1. ``$CS336_SHARED_DIR/<relative>`` when the environment variable is set;
2. a ``shared/`` folder beside the checkout (CI places it there: ``<repo>/../shared``);
3. a download of ``url`` (the public source: the course repositories, tiktoken's GPT-2 files)
   into ``$CS336_CACHE_DIR`` (default ``~/.cache/cs336``).

If none works, :class:`SharedDataUnavailable` says what was tried, so a test can skip with the reason.

:func:`download_file` is the one downloader: resumable (a ``.part`` file continues with an HTTP ``Range``
request), atomic (the final name appears only when complete) and skipped when the file is already there.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from cs336_basics.toolkit.atomic import atomic_output

ENV_SHARED_DIR = "CS336_SHARED_DIR"
ENV_CACHE_DIR = "CS336_CACHE_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[4]


class SharedDataUnavailable(FileNotFoundError):
    """No copy of a shared data file could be found or downloaded."""


def shared_dir() -> Path | None:
    """The shared folder in use, or None when there is none."""
    env = os.environ.get(ENV_SHARED_DIR)
    if env:
        return Path(env)
    for root in (Path.cwd(), *Path.cwd().parents, _REPO_ROOT):
        candidate = root.parent / "shared"
        if (candidate / "fixtures").is_dir() and (root / "pyproject.toml").is_file():
            return candidate
    return None


def cache_dir() -> Path:
    """Where downloads of shared files and other fetched assets are kept."""
    return Path(os.environ.get(ENV_CACHE_DIR, Path.home() / ".cache" / "cs336"))


def shared_path(relative: str, url: str | None = None) -> Path:
    """Return a readable local path for ``relative``, downloading ``url`` into the cache if needed."""
    tried: list[str] = []
    base = shared_dir()
    if base is not None:
        path = base / relative
        if path.exists():
            return path
        tried.append(str(path))
    else:
        tried.append(f"no ${ENV_SHARED_DIR} and no ../shared beside the checkout")
    cached = cache_dir() / relative
    if cached.exists():
        return cached
    if url is None:
        raise SharedDataUnavailable(f"{relative} not found (tried {'; '.join(tried)}) and it has no public download")
    try:
        download_file(url, cached, progress=False)
    except (DownloadError, OSError) as err:
        message = f"{relative} not found (tried {'; '.join(tried)}); download of {url} failed: {err}"
        raise SharedDataUnavailable(message) from err
    return cached


class DownloadError(RuntimeError):
    """A file could not be fetched (offline, HTTP error); the message names the URL and the cause."""


def download_file(url: str, dest: str | os.PathLike, progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``; a ``.gz`` URL is decompressed unless ``dest`` keeps the ``.gz`` suffix.
    An existing ``dest`` is kept as is."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    decompress = url.endswith(".gz") and dest.suffix != ".gz"
    part = dest.with_name(dest.name + (".gz" if decompress else "") + ".part")
    _fetch_resumable(url, part, progress, timeout)
    if decompress:
        with gzip.open(part, "rb") as source, atomic_output(dest) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        part.unlink()
    else:
        os.replace(part, dest)
    return dest


def _fetch_resumable(url: str, part: Path, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the range starts at the end: the part file is already complete
            return
        raise DownloadError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"downloading {url} failed ({err}); are you online?") from err
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress)
        try:
            with part.open("ab" if resumed else "wb") as f, bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise DownloadError(f"downloading {url} broke off ({err}); run again to resume") from err
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"downloading {url} ended early at {part.stat().st_size} of {total} bytes; run again")
