"""Harmful-content and quality classifiers, exercised for real (offline default models and a trained fastText)."""

import pytest
from cs336_data.dolma_models import AssetDownloadError, download_dolma_model, download_dolma_models
from cs336_data.harmful import NSFW, TOXIC, DolmaJigsawClassifier, ProfanityCheckClassifier, harm_classifier
from cs336_data.quality import SHIPPED_QUALITY_MODEL, QualityClassifier, fasttext_line

from .adapters import run_classify_nsfw, run_classify_quality, run_classify_toxic_speech

OBSCENE = (
    "SUCK MY C*CK WIKIPEDIA EDITORS...F*CKING *SSH*LE DORKS. JUST TRYING TO MAKE THE SITE BETTER YOU UPTIGHT C*NTS"
)
HARMLESS = "Umm, theres no actual article for prostitution ring.  - Crunch Captain."
INSULT = (
    "Why did that idiot revert the reversion I made? Can that moron not have the decent common sense to read the "
    "comments? Go f*** yourself, you worthless piece of sh*t, you stupid little runt."
)
MILD = "Why the fc*k should I get a warning for doing nothing?"


def test_classify_nsfw():
    label, score = run_classify_nsfw(OBSCENE)
    assert label == "nsfw" and isinstance(score, float) and score > 0.5
    label, score = run_classify_nsfw(HARMLESS)
    assert label == "non-nsfw" and isinstance(score, float) and score > 0.5


def test_classify_toxic_speech():
    label, score = run_classify_toxic_speech(INSULT)
    assert label == "toxic" and isinstance(score, float) and score > 0.5
    label, score = run_classify_toxic_speech(MILD)
    assert label == "non-toxic" and isinstance(score, float) and score > 0


def test_offline_default_is_used_without_dolma_files(monkeypatch, tmp_path):
    monkeypatch.setenv("CS336_NSFW_MODEL", str(tmp_path / "missing.bin"))
    assert isinstance(harm_classifier(NSFW), ProfanityCheckClassifier)


def test_dolma_backend_reads_fasttext_labels(monkeypatch, tmp_path, fixtures_dir):
    """A real fastText model carrying Dolma's label names is picked up from the env var and its labels returned.

    The model is the shipped quality classifier with its labels renamed in the file (fastText rebuilds its label
    index from the stored strings on load): training one here is unreliable, as ``fasttext-numpy2`` often aborts
    small trainings with a spurious NaN.
    """
    model = SHIPPED_QUALITY_MODEL.read_bytes()
    renamed = model.replace(b"__label__wiki\x00", b"__label__toxic\x00").replace(
        b"__label__cc\x00", b"__label__non-toxic\x00"
    )
    model_path = tmp_path / "jigsaw_toxic.ftz"
    model_path.write_bytes(renamed)
    monkeypatch.setenv("CS336_TOXIC_MODEL", str(model_path))
    classifier = harm_classifier(TOXIC)
    assert isinstance(classifier, DolmaJigsawClassifier)
    for fixture, quality_label in (("high_quality_wiki_reference.txt", "wiki"), ("low_quality_cc.txt", "cc")):
        text = (fixtures_dir / fixture).read_text()
        quality, quality_score = QualityClassifier()(text)
        assert quality == quality_label
        # the quality classifier lowercases first; given the same line, both read the same model
        assert classifier(fasttext_line(text)) == (
            {"wiki": "toxic", "cc": "non-toxic"}[quality],
            pytest.approx(quality_score),
        )
    with pytest.raises(ValueError, match="not a nsfw model"):
        DolmaJigsawClassifier(NSFW, model_path)("anything")


def test_classify_quality_fixtures(fixtures_dir):
    label, score = run_classify_quality((fixtures_dir / "high_quality_wiki_reference.txt").read_text())
    assert label == "wiki" and isinstance(score, float) and score > 0
    label, score = run_classify_quality((fixtures_dir / "low_quality_cc.txt").read_text())
    assert label == "cc" and isinstance(score, float) and score > 0


def test_quality_probability_is_consistent_with_label(fixtures_dir):
    classifier = QualityClassifier()
    text = (fixtures_dir / "high_quality_wiki_reference.txt").read_text()
    label, score = classifier(text)
    assert classifier.high_quality_probability(text) == pytest.approx(score if label == "wiki" else 1 - score)


def test_dolma_download_writes_models_and_fails_clearly_offline(tmp_path):
    source = tmp_path / "server"
    source.mkdir()
    for kind in (NSFW, TOXIC):
        (source / kind.dolma_file).write_bytes(kind.name.encode() * 1000)
    paths = download_dolma_models(tmp_path / "cache", base_url=source.as_uri() + "/")
    assert [p.read_bytes() for p in paths] == [b"nsfw" * 1000, b"toxic" * 1000]
    assert not list((tmp_path / "cache").glob("*.part"))
    with pytest.raises(AssetDownloadError, match="could not download the Dolma nsfw model.*CS336_NSFW_MODEL"):
        download_dolma_model(NSFW, tmp_path / "empty", base_url="http://127.0.0.1:9/", timeout=2)
    assert not (tmp_path / "empty" / NSFW.dolma_file).exists()


def test_harm_backend_is_described(tmp_path, monkeypatch):
    from cs336_data.harmful import NSFW, describe_harm_backend

    monkeypatch.setenv(NSFW.env_var, str(tmp_path / "absent.bin"))
    assert "offline alt-profanity-check" in describe_harm_backend(NSFW)
    (tmp_path / "absent.bin").write_bytes(b"")
    assert "Dolma" in describe_harm_backend(NSFW) and str(tmp_path) in describe_harm_backend(NSFW)
