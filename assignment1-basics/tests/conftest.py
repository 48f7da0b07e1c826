"""Shared test fixtures: course data through `cs336_basics.toolkit.data_paths`, and an offline tiktoken."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cs336_basics.tiktoken_offline import load_gpt2_encoding
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path

# The tests run tiny tensors, where intra-op threads only add synchronisation, and on a busy 2-core CI machine
# two spinning threads per process make them several times slower.
torch.set_num_threads(1)

COURSE_FIXTURES_URL = "https://raw.githubusercontent.com/stanford-cs336/assignment1-basics/main/tests/fixtures/"


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
    pytest.importorskip("tiktoken")
    cache = tmp_path_factory.mktemp("tiktoken_cache")
    return load_gpt2_encoding(cache, fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt"))
