"""Load tiktoken's ``gpt2`` encoding without network access, from local copies of GPT-2's files.

tiktoken downloads ``encoder.json`` and ``vocab.bpe`` and caches each under ``sha1(url)`` in
``$TIKTOKEN_CACHE_DIR``. The course fixtures hold the same bytes (``vocab.bpe`` is the merges file with a
``#version: 0.2`` line on top), so seeding that cache gives the genuine encoding; tiktoken still checks the
seeded files against its pinned sha256 hashes, which proves they are the real GPT-2 files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

TIKTOKEN_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"


def seed_tiktoken_gpt2_cache(
    cache_dir: str | os.PathLike, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike
) -> None:
    """Write GPT-2's files into ``cache_dir`` under the names tiktoken looks for."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    merges = Path(merges_txt).read_bytes()
    files = {
        "encoder.json": Path(vocab_json).read_bytes(),
        "vocab.bpe": merges if merges.startswith(b"#version") else b"#version: 0.2\n" + merges,
    }
    for name, data in files.items():
        (cache / hashlib.sha1((TIKTOKEN_GPT2_URL + name).encode()).hexdigest()).write_bytes(data)


def load_gpt2_encoding(cache_dir: str | os.PathLike, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike):
    """tiktoken's ``gpt2`` encoding built from local files (the environment is restored afterwards)."""
    import tiktoken
    import tiktoken.registry

    seed_tiktoken_gpt2_cache(cache_dir, vocab_json, merges_txt)
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = os.fspath(cache_dir)
    tiktoken.registry.ENCODINGS.pop("gpt2", None)  # a cached encoding may come from other files
    try:
        return tiktoken.get_encoding("gpt2")
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous
