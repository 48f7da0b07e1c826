"""Each package is its own pytest project; from the repository root pytest would read the five ``tests`` packages
as one and fail on their clashing names, so it stops with the commands that work instead."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    start = config.invocation_params.dir
    targets = [Path(start, arg.split("::")[0]).resolve() for arg in config.args] or [Path(start).resolve()]
    if ROOT in targets:
        raise pytest.UsageError(
            "run the tests per package, not from the repository root: `make test` runs every suite, "
            "`cd assignment1-basics && uv run pytest` one package (likewise the other four), "
            "`cd notebooks && uv run pytest tests` the notebooks"
        )
