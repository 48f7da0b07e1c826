"""Where the course fixtures are: the shared folder (never copied into the repo), else ``tests/fixtures``."""

from __future__ import annotations

from pathlib import Path

from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path

try:
    FIXTURES_PATH = shared_path("fixtures/assignment4")
except SharedDataUnavailable:
    FIXTURES_PATH = Path(__file__).parent / "fixtures"
