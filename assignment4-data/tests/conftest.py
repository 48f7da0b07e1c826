"""Course fixtures through `cs336_basics.toolkit.data_paths`; a test skips, saying why, when they are unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    try:
        return shared_path("fixtures/assignment4")
    except SharedDataUnavailable as err:
        pytest.skip(str(err))
