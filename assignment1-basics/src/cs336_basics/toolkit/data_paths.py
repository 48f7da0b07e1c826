"""Locate the course's data files: the one place every package's tests and scripts look for them.

Lookup order for a path relative to the shared folder (for example ``fixtures/assignment1/corpus.en``):

1. ``$CS336_SHARED_DIR/<relative>`` when the environment variable is set;
2. a ``shared/`` folder beside the checkout (CI places it there: ``<repo>/../shared``);
3. a download of ``url`` (the public source: the course repositories, tiktoken's GPT-2 files)
   into ``$CS336_CACHE_DIR`` (default ``~/.cache/cs336``).

If none works, :class:`SharedDataUnavailable` says what was tried, so a test can skip with the reason.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ENV_SHARED_DIR = "CS336_SHARED_DIR"
ENV_CACHE_DIR = "CS336_CACHE_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]


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
        _download(url, cached)
    except (urllib.error.URLError, OSError) as err:
        message = f"{relative} not found (tried {'; '.join(tried)}); download of {url} failed: {err}"
        raise SharedDataUnavailable(message) from err
    return cached


def _download(url: str, dest: Path) -> None:
    """Download atomically: a partial file never appears under the final name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=30) as response:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
