"""The benchmark text: at least 10 MB of real English, assembled from what is available offline.

In order: the course's TinyStories 5 MB sample (``shared_path``, downloaded from the course repository when
there is no shared folder), the English corpora in gensim's wheel (Lee news + Wikipedia prose, see
:mod:`cs336_basics.english_corpus`), then plain-text English documentation installed on the machine (Vim's
manual, Node.js's API docs) until the target size is reached. The file is cached under ``runs/bench/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cs336_basics.english_corpus import END_OF_TEXT, lee_documents, wikipedia_documents  # noqa: E402
from cs336_basics.toolkit.atomic import write_text_atomic  # noqa: E402
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path  # noqa: E402

COURSE_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"
SYSTEM_DOCS = (
    ("Vim manual", Path("/usr/share/vim/vim90/doc"), "*.txt"),
    ("Node.js API docs", Path("/usr/share/doc/nodejs/api"), "*.md"),
)


def build_english_text(out: Path, min_bytes: int = 10_000_000) -> tuple[Path, list[str]]:
    """Write the benchmark text to ``out`` (reused if present); return it and a description of its sources."""
    sources_file = out.with_suffix(".sources")
    if out.exists() and sources_file.exists() and out.stat().st_size >= min_bytes:
        return out, sources_file.read_text().splitlines()
    parts: list[str] = []
    sources: list[str] = []

    def add(name: str, text: str) -> None:
        parts.append(text)
        sources.append(f"{name}: {len(text.encode('utf-8')) / 1e6:.1f} MB")

    try:
        add(
            "TinyStories 5M sample",
            shared_path(
                "fixtures/assignment1/tinystories_sample_5M.txt", COURSE_FIXTURES_URL + "tinystories_sample_5M.txt"
            ).read_text("utf-8"),
        )
    except SharedDataUnavailable as err:
        print(f"skipping TinyStories: {err}", file=sys.stderr)
    add(
        "gensim Lee news + Wikipedia prose",
        "".join(d + END_OF_TEXT for d in (*lee_documents(), *wikipedia_documents())),
    )
    for name, folder, pattern in SYSTEM_DOCS:
        if sum(len(p.encode("utf-8")) for p in parts) >= min_bytes:
            break
        files = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if files:
            add(f"{name} ({folder})", "".join(f.read_text("utf-8", errors="replace") + END_OF_TEXT for f in files))
    text = "".join(parts)
    if len(text.encode("utf-8")) < min_bytes:
        raise RuntimeError(
            f"only {len(text.encode('utf-8')) / 1e6:.1f} MB of English text found offline; "
            f"pass --text with a larger UTF-8 file"
        )
    write_text_atomic(out, text)
    write_text_atomic(sources_file, "\n".join(sources) + "\n")
    return out, sources
