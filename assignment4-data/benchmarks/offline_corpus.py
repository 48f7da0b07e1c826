"""Real text and HTML found offline on this machine, shared by the benchmarks (no downloads).

HTML: Debian's documentation packages (``/usr/share/doc``), npm's bundled docs, and the Rust books that rustup
installs, when present, plus any ``--html-root`` given. Prose: the Wikipedia excerpt the ``gensim`` wheel ships.
Also two patches that let ``datatrove`` 0.10 run here: a word tokenizer that needs no spaCy, and xxhash 4.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_HTML_ROOTS = [
    Path("/usr/share/doc"),
    Path("/usr/lib/node_modules/npm/docs"),
    *sorted(Path.home().glob(".rustup/toolchains/*/share/doc/rust/html")),
]
RUST_PROSE_BOOKS = (
    "book",
    "reference",
    "nomicon",
    "rust-by-example",
    "cargo",
    "rustc",
    "edition-guide",
    "embedded-book",
    "unstable-book",
    "rustdoc",
    "style-guide",
)


def html_files(roots: Iterable[Path], min_bytes: int = 2_000) -> Iterator[Path]:
    """HTML files under the roots, each distinct content once (rustup installs stable and nightly copies)."""
    seen: set[bytes] = set()
    for root in roots:
        if not root.is_dir():
            continue
        if root.name == "html" and "rust" in root.parts:  # only the books: the API pages are code listings
            candidates = itertools.chain.from_iterable(sorted((root / b).rglob("*.html")) for b in RUST_PROSE_BOOKS)
        else:
            candidates = sorted(root.rglob("*.html"))
        for path in candidates:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            digest = hashlib.blake2b(data, digest_size=16).digest()
            if len(data) >= min_bytes and digest not in seen:
                seen.add(digest)
                yield path


def html_pages(roots: Iterable[Path], limit: int) -> list[tuple[str, bytes]]:
    """Up to ``limit`` ``(file:// URL, HTML bytes)`` pages."""
    return [(p.as_uri(), p.read_bytes()) for p in itertools.islice(html_files(roots), limit)]


def patch_datatrove_word_tokenizer() -> None:
    """Make datatrove split words on whitespace instead of loading spaCy (not installed).

    Whitespace splitting is cheaper than spaCy's tokenizer, so this can only make datatrove faster.
    """
    import datatrove.pipeline.dedup.minhash as minhash_module
    import datatrove.utils.text as text_module
    import datatrove.utils.word_tokenizers as tokenizers_module
    from datatrove.utils.word_tokenizers import WordTokenizer

    class SplitTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [line for line in text.splitlines() if line.strip()]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            spans, start = [], 0
            for sentence in self.sent_tokenize(text):
                start = text.index(sentence, start)
                spans.append((start, start + len(sentence)))
                start += len(sentence)
            return spans

    tokenizer = SplitTokenizer()
    for module in (tokenizers_module, text_module, minhash_module):
        if hasattr(module, "load_word_tokenizer"):
            module.load_word_tokenizer = lambda language, _t=tokenizer: _t


def patch_datatrove_xxhash() -> None:
    """datatrove 0.10 hands ``str`` to xxhash, which xxhash 4 refuses; encode first (what xxhash 3 did inside)."""
    import datatrove.utils.hashes.xxhash as module
    import xxhash

    module.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)
    module.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
