"""Shared test fixtures: course data through `cs336_basics.shared_data`, and an offline tiktoken."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cs336_basics.shared_data import SharedDataUnavailable, shared_path

COURSE_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"
TIKTOKEN_GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"


def fixture_path(name: str) -> Path:
    """Path of an assignment-1 fixture file, or skip the test saying why it is unavailable."""
    try:
        return shared_path(f"fixtures/assignment1/{name}", url=COURSE_FIXTURES_URL + name)
    except SharedDataUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return fixture_path("corpus.en").parent


@pytest.fixture(scope="session")
def gpt2_encoding(tmp_path_factory):
    """tiktoken's `gpt2` encoding, loaded offline from the course's byte-identical GPT-2 fixtures.

    tiktoken caches each download under sha1(url); we seed that cache from the fixtures so no network is
    needed (its sha256 checks still run on the seeded bytes).
    """
    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.registry

    cache = tmp_path_factory.mktemp("tiktoken_cache")
    files = {
        "encoder.json": fixture_path("gpt2_vocab.json").read_bytes(),
        "vocab.bpe": b"#version: 0.2\n" + fixture_path("gpt2_merges.txt").read_bytes(),
    }
    for name, data in files.items():
        (cache / hashlib.sha1((TIKTOKEN_GPT2_URL + name).encode()).hexdigest()).write_bytes(data)
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    tiktoken.registry.ENCODINGS.pop("gpt2", None)
    try:
        yield tiktoken.get_encoding("gpt2")
    finally:
        mp.undo()
