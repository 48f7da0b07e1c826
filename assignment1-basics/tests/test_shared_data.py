from pathlib import Path

import pytest
from cs336_basics.toolkit.data_paths import SharedDataUnavailable, shared_path


def test_env_var_takes_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "x.txt").write_text("hello")
    monkeypatch.setenv("CS336_SHARED_DIR", str(tmp_path))
    assert shared_path("fixtures/x.txt").read_text() == "hello"


def test_missing_file_without_url_raises_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CS336_SHARED_DIR", str(tmp_path))
    monkeypatch.setenv("CS336_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SharedDataUnavailable, match="no public download"):
        shared_path("fixtures/none.txt")


def test_unreachable_download_raises_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CS336_SHARED_DIR", str(tmp_path))
    monkeypatch.setenv("CS336_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SharedDataUnavailable, match="download of"):
        shared_path("fixtures/none.txt", url="http://127.0.0.1:9/none.txt")
    assert not list((tmp_path / "cache").rglob("*.txt"))
