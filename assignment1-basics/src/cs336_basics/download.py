"""Download the course's training data: TinyStories and the OpenWebText sample (URLs from the course handout).

Downloads are resumable (a ``.part`` file continues with an HTTP ``Range`` request), atomic (the final name
appears only when complete, ``.gz`` files are decompressed into a temporary file first) and skipped when the
file is already there. Without network the error says which URL failed and why.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

_HF = "https://huggingface.co/datasets"
DATASETS: dict[str, dict[str, str]] = {
    "tinystories": {
        "TinyStoriesV2-GPT4-train.txt": f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        "TinyStoriesV2-GPT4-valid.txt": f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
    },
    "owt": {
        "owt_train.txt": f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz",
        "owt_valid.txt": f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz",
    },
}


class DownloadError(RuntimeError):
    """A file could not be fetched (offline, HTTP error); the message names the URL and the cause."""


def download_file(url: str, dest: str | os.PathLike, progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` (decompressing ``.gz`` URLs); an existing ``dest`` is kept as is."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + (".gz" if url.endswith(".gz") else "") + ".part")
    _fetch_resumable(url, part, progress, timeout)
    if url.endswith(".gz"):
        tmp = dest.with_name(dest.name + ".tmp")
        with gzip.open(part, "rb") as source, tmp.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        os.replace(tmp, dest)
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


def download_datasets(out_dir: str | os.PathLike, names: list[str], progress: bool = True) -> list[Path]:
    """Download every file of the named datasets (``tinystories``, ``owt``) into ``out_dir``."""
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}")
    return [
        download_file(url, Path(out_dir) / filename, progress)
        for name in names
        for filename, url in DATASETS[name].items()
    ]
