"""English prose from Debian's documentation packages: a natural-language corpus that needs only a package mirror.

A scaling study needs text whose loss falls smoothly with size and data: natural language, deduplicated, and
larger than the biggest run. Machines that cannot reach TinyStories or OpenWebText can usually still reach a
Debian mirror, and its documentation packages hold a few hundred MB of English: the manuals of Linux, Python,
Rust, PostgreSQL, Django, SciPy, Octave, Git and GIMP, Perl's pods, Vim's help, the GCIDE (Webster 1913) and
WordNet dictionaries. This module reads those packages straight from their ``.deb`` files (an ``ar`` archive holding
``data.tar.*``), turns each page into plain text (HTML through ``cs336_data.extraction``, assignment 4's
extractor), keeps only the first occurrence of each line across the whole collection (assignment 4's exact-line
hashes, but keeping one copy where its deduplicator drops every copy: navigation, licence boilerplate, repeated
API blurbs, dictionary source tags and the HTML and source copies of one manual all collapse to one), keeps
documents that are still long and read as English, and writes one text file per document for
``corpus.build_corpus``.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_data.dedup.exact_lines import hash_lines
from cs336_data.extraction import extract_text_from_html_bytes

DEFAULT_PACKAGES = (
    "linux-doc-6.1",
    "python3.11-doc",
    "rust-doc",
    "postgresql-doc-15",
    "python-django-doc",
    "gimp-help-en",
    "python-scipy-doc",
    "octave-doc",
    "git-doc",
    "debian-handbook",
    "debian-reference-en",
    "perl-doc",
    "vim-runtime",
    "dict-gcide",
    "dict-wn",
    "dict-foldoc",
    "dict-jargon",
    "dict-devil",
)
TEXT_SUFFIXES = (".txt", ".rst", ".pod", ".md", ".dict")
HTML_SUFFIXES = (".html", ".htm")
ENGLISH_STOPWORDS = frozenset(
    "the of and to a in is that for it as with be on by this are or an not from at which can if you will "
    "was but have has its all one their there when may also these they more other than into only such".split()
)
_WORD = re.compile(r"[A-Za-z]+")
_SPACES = re.compile(r"[ \t\f\v\r]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class DebianTextConfig:
    """Collect deduplicated English prose from Debian documentation packages, one text file per document."""

    out_dir: str = field(default="runs/english_text", metadata={"help": "folder for <package>/<n>.txt"})
    packages: list[str] = field(default_factory=lambda: list(DEFAULT_PACKAGES), metadata={"help": "packages to read"})
    debs_dir: str = field(
        default="debs", metadata={"help": "folder of .deb files; missing ones are fetched with apt-get"}
    )
    min_document_chars: int = field(default=1000, metadata={"help": "shorter documents are dropped"})
    max_document_chars: int = field(default=50_000, metadata={"help": "longer texts are cut at paragraphs"})
    min_stopword_fraction: float = field(default=0.15, metadata={"help": "English filter: share of stopwords"})
    workers: int | None = field(default=None, metadata={"help": "processes reading packages (default: every core)"})


def download_packages(packages: list[str], debs_dir: Path) -> list[Path]:
    """The ``.deb`` of each package, fetched with ``apt-get download`` unless ``debs_dir`` already has it."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in packages if not list(debs_dir.glob(f"{name}_*.deb"))]
    if missing:
        if shutil.which("apt-get") is None:
            raise RuntimeError(
                f"apt-get is not available to fetch {missing}: download their .deb files from a Debian mirror "
                f"(packages.debian.org) into {debs_dir} and run again"
            )
        result = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(missing)} failed:\n{result.stderr.strip()}")
    return [sorted(debs_dir.glob(f"{name}_*.deb"))[-1] for name in packages]


def deb_members(deb: Path) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every regular file in a ``.deb``'s data archive."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb} is not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(raw):
        header = raw[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58])
        body = raw[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            with _open_tar(name, body) as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name, archive.extractfile(member).read()
            return
    raise ValueError(f"{deb} has no data.tar member")


def _open_tar(name: str, body: bytes) -> tarfile.TarFile:
    """The data archive read as a stream (tarfile decompresses xz, gzip and bzip2 itself; zstd needs a module)."""
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as err:
            raise RuntimeError("this package's data is zstd-compressed (Ubuntu): pip install zstandard") from err
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return tarfile.open(fileobj=io.BytesIO(body), mode="r|*")


def member_text(path: str, data: bytes) -> str | None:
    """The plain text of one packaged file, or None when it is not documentation (images, scripts, indexes)."""
    if path.endswith((".gz", ".dz")):
        path = path[:-3]
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    if path.endswith(HTML_SUFFIXES):
        return extract_text_from_html_bytes(data) or None
    if path.endswith(TEXT_SUFFIXES):
        return data.decode("utf-8", errors="replace")
    return None


def normalise(text: str) -> list[str]:
    """Lines with runs of spaces collapsed and ends stripped (indentation carries little in prose)."""
    return [_SPACES.sub(" ", line).strip() for line in text.split("\n")]


def package_documents(deb: Path) -> list[list[str]]:
    """The normalised lines of each documentation file of one package, in archive order. A Sphinx build ships every page
    twice, as HTML and as its reStructuredText source under ``_sources/``; only the source is read (the two
    wrap lines differently, so line dedup would not catch the copy)."""
    members = list(deb_members(deb))
    sphinx_roots = {path.split("/_sources/")[0] + "/" for path, _ in members if "/_sources/" in path}
    documents = []
    for path, data in members:
        if path.endswith(HTML_SUFFIXES) and any(path.startswith(root) for root in sphinx_roots):
            continue
        text = member_text(path, data)
        if text and text.strip():
            documents.append(normalise(text))
    return documents


def english_fraction(text: str) -> float:
    """Share of words that are common English function words: ~0.4 in English prose, ~0 in other languages."""
    words = _WORD.findall(text.lower())
    return sum(word in ENGLISH_STOPWORDS for word in words) / max(len(words), 1)


def first_occurrences(lines: list[str], seen: set[int]) -> str:
    """The text with every non-empty line already in ``seen`` dropped; the kept lines join ``seen``."""
    kept = []
    for line, key in zip(lines, hash_lines([line.encode() for line in lines]).tolist(), strict=True):
        if line:
            if key in seen:
                continue
            seen.add(key)
        kept.append(line)
    return _BLANK_LINES.sub("\n\n", "\n".join(kept)).strip()


def split_long(text: str, max_chars: int) -> list[str]:
    """Cut a long text (a whole dictionary) at paragraph breaks, or at line breaks inside an overlong paragraph,
    into pieces of at most about ``max_chars``."""
    blocks = []
    for paragraph in text.split("\n\n"):
        blocks.extend([paragraph] if len(paragraph) <= max_chars else _pack(paragraph.split("\n"), max_chars, "\n"))
    return _pack(blocks, max_chars, "\n\n")


def _pack(parts: list[str], max_chars: int, separator: str) -> list[str]:
    """Join consecutive parts with ``separator`` into pieces of at most about ``max_chars``."""
    pieces, current, size = [], [], 0
    for part in parts:
        if current and size + len(part) > max_chars:
            pieces.append(separator.join(current))
            current, size = [], 0
        current.append(part)
        size += len(part) + len(separator)
    if current:
        pieces.append(separator.join(current))
    return pieces


def build_debian_text(config: DebianTextConfig, progress: bool = True) -> dict[str, dict[str, int]]:
    """Write one ``.txt`` per kept document under ``out_dir/<package>/``; per package, documents and characters."""
    debs = download_packages(config.packages, Path(config.debs_dir))
    with ProcessPoolExecutor(config.workers) as pool:
        per_package = list(pool.map(package_documents, debs))
    seen: set[int] = set()
    out = Path(config.out_dir)
    summary: dict[str, dict[str, int]] = {}
    for package, documents in zip(config.packages, per_package, strict=True):
        folder = out / package
        folder.mkdir(parents=True, exist_ok=True)
        kept = chars = 0
        for lines in documents:
            for text in split_long(first_occurrences(lines, seen), config.max_document_chars):
                if len(text) < config.min_document_chars or english_fraction(text) < config.min_stopword_fraction:
                    continue
                write_text_atomic(folder / f"{kept:06d}.txt", text + "\n")
                kept += 1
                chars += len(text)
        summary[package] = {"files": len(documents), "documents": kept, "characters": chars}
        if progress:
            print(f"{package}: {kept:,} of {len(documents):,} files kept, {chars / 1e6:.1f} M characters")
    return summary
