"""English text from Debian packages, on a small .deb built here (ar archive + data.tar.xz), no mirror needed."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest
from cs336_scaling.debian_text import DebianTextConfig, build_debian_text, deb_members, english_fraction, split_long

PROSE = (
    "The scheduler decides which of the runnable tasks gets the processor next. It keeps a queue for each "
    "processor, and when a task has used its share of time it is moved to the back of the queue so that the "
    "others can run. This is a simple rule, but it is fair to every task that is waiting for its turn."
)
SHARED_LINE = "Every process has an identifier that is unique while it is alive on the system and can be reused."
GERMAN = (
    "Der Planer entscheidet, welche der lauffähigen Aufgaben als nächste den Prozessor bekommt. Er führt "
    "eine Warteschlange für jeden Prozessor und verschiebt jede Aufgabe nach ihrem Anteil nach hinten. "
) * 4


def ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    body = lzma.compress(tar_bytes.getvalue())
    path.write_bytes(
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member("control.tar.xz", lzma.compress(b""))
        + ar_member("data.tar.xz", body)
    )
    return path


def test_deb_members_reads_the_data_archive(tmp_path):
    deb = make_deb(tmp_path / "doc_1.0_all.deb", {"usr/share/doc/doc/a.txt": b"alpha", "usr/share/doc/doc/b": b"b"})
    assert dict(deb_members(deb)) == {"./usr/share/doc/doc/a.txt": b"alpha", "./usr/share/doc/doc/b": b"b"}
    not_a_deb = tmp_path / "x.deb"
    not_a_deb.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="not a Debian package"):
        list(deb_members(not_a_deb))


def test_english_fraction_separates_english_from_german():
    assert english_fraction(PROSE) > 0.3
    assert english_fraction(GERMAN) < 0.05


def test_split_long_cuts_at_paragraphs_then_lines():
    text = "\n\n".join(["a" * 30] * 4) + "\n\n" + "\n".join(["b" * 30] * 4)
    pieces = split_long(text, 70)
    assert all(len(piece) <= 70 for piece in pieces)
    assert "\n\n".join(pieces).replace("\n\n", "\n").split("\n") == text.replace("\n\n", "\n").split("\n")


def test_build_keeps_english_once_and_drops_the_rest(tmp_path):
    sphinx_page = f"<html><body><nav>Navigation</nav><main><p>{PROSE}</p></main></body></html>"
    guide = (
        f"<html><head><title>Guide</title></head><body><main><h1>Processes</h1><p>{SHARED_LINE}</p>"
        f"<p>{PROSE.upper()} {PROSE.lower()}</p></main></body></html>"
    )
    dictionary = "\n\n".join(
        f"word{i}\n  n 1: a thing that is used for the purpose of number {i} in a list" for i in range(400)
    )
    make_deb(
        tmp_path / "debs" / "demo-doc_1.0_all.deb",
        {
            "usr/share/doc/demo/html/sched.html": sphinx_page.encode(),
            "usr/share/doc/demo/html/_sources/sched.rst.txt": f"Scheduling\n\n{PROSE}\n\n{SHARED_LINE}\n".encode(),
            "usr/share/doc/demo/guide.html": guide.encode(),
            "usr/share/doc/demo/notes.txt.gz": gzip.compress(f"{SHARED_LINE}\n\n{PROSE}\n\nNotes end here.\n".encode()),
            "usr/share/doc/demo/de/planer.txt": GERMAN.encode(),
            "usr/share/doc/demo/logo.png": b"\x89PNG\r\n",
            "usr/share/dictd/demo.dict.dz": gzip.compress(dictionary.encode()),
        },
    )
    config = DebianTextConfig(
        out_dir=str(tmp_path / "text"),
        packages=("demo-doc",),
        debs_dir=str(tmp_path / "debs"),
        min_document_chars=200,
        max_document_chars=5000,
    )
    summary = build_debian_text(config, progress=False)
    texts = [p.read_text() for p in sorted((tmp_path / "text" / "demo-doc").glob("*.txt"))]
    joined = "".join(texts)
    # the Sphinx HTML page is skipped for its source; the shared line and the prose are kept once
    assert joined.count(PROSE) == 1 and joined.count(SHARED_LINE) == 1 and "Navigation" not in joined
    assert "Planer" not in joined  # German dropped
    assert "Notes end here." not in joined  # what is left of notes.txt is too short to keep
    # the dictionary is cut into pieces that hold each entry at most once (a short last piece is dropped)
    entries = [line for text in texts for line in text.split("\n") if line.startswith("n 1: a thing")]
    assert len(entries) == len(set(entries)) and 390 <= len(entries) <= 400
    assert all(len(text) <= 5001 for text in texts)
    assert summary["demo-doc"]["documents"] == len(texts)
    assert summary["demo-doc"]["characters"] == sum(len(text) - 1 for text in texts)


def test_missing_packages_without_apt_get_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("cs336_scaling.debian_text.shutil.which", lambda name: None)
    config = DebianTextConfig(out_dir=str(tmp_path / "text"), packages=("no-such-doc",), debs_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get is not available"):
        build_debian_text(config, progress=False)
