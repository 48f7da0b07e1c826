"""The handout's Gopher rules, one case per rule (boundaries checked against hand-counted word totals)."""

import random

from cs336_data.gopher import gopher_rejection_reason, words_of

from .adapters import run_gopher_quality_filter

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank today. "


def test_normal_text_passes():
    assert run_gopher_quality_filter(SENTENCE * 20)


def test_too_few_words():
    assert not run_gopher_quality_filter("This sentence has exactly ten words in it, really.")


def test_word_count_bounds():
    assert run_gopher_quality_filter("word " * 50_000)
    assert not run_gopher_quality_filter("word " * 500_000)
    assert run_gopher_quality_filter("word " * 50)
    assert not run_gopher_quality_filter("word " * 49)


def test_mean_word_length():
    assert not run_gopher_quality_filter("the be " * 50)  # mean 2.5
    assert run_gopher_quality_filter("the with " * 50)  # mean 3.5
    assert gopher_rejection_reason("supercalifragilistic " * 60 + "a " * 10) == "mean_word_length"


def test_ellipsis_lines():
    lines = ["This line of the document ends in an ellipsis ..."] * 70 + ["This line is a complete sentence."] * 30
    assert gopher_rejection_reason("\n".join(lines)) == "ellipsis_lines"
    lines = lines[40:]  # 30 of 60 lines: 50% still too many
    assert not run_gopher_quality_filter("\n".join(lines))
    ok = ["This line of the document ends in an ellipsis ..."] * 3 + ["This line is a complete sentence."] * 17
    assert run_gopher_quality_filter("\n".join(ok))


def test_alphabetic_words():
    text = "1234 5678 2024 31415 " * 25 + "word " * 20  # 20 of 120 words alphabetic
    assert gopher_rejection_reason(text) == "alphabetic_words"
    assert run_gopher_quality_filter("1234 5678 " * 10 + "word " * 80)  # 80 of 100


def test_rule_statistics_match_a_per_word_reference():
    """Mean word length and the share of words with a letter, against per-word Python on mixed-script text."""
    rng = random.Random(0)
    pieces = ["word", "Straße", "日本語", "42", "3.14", "--", "l33t", "ünï", "!!", "a", "x_y", "½", "٣", "…", "ok."]
    for _ in range(30):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(50, 120)))
        words = words_of(text)
        mean = sum(len(w) for w in words) / len(words)
        alpha = sum(1 for w in words if any(c.isalpha() for c in w)) / len(words)
        expected = None
        if not 3 <= mean <= 10:
            expected = "mean_word_length"
        elif alpha < 0.8:
            expected = "alphabetic_words"
        assert gopher_rejection_reason(text) == expected, (mean, alpha)


def test_tokenizer_matches_nltk_on_real_text(fixtures_dir):
    from cs336_data.extraction import extract_text_from_html_bytes
    from cs336_data.quality_training import wikipedia_chunks
    from nltk.tokenize import NLTKWordTokenizer

    texts = [extract_text_from_html_bytes((fixtures_dir / "moby.html").read_bytes())]
    texts += [chunk for _, chunk in zip(range(40), wikipedia_chunks())]
    texts += ["He said \"don't\" -- (twice)... can't; 'tis 3.5% at $4, «ok» — “fine”! Mr. Smith."]
    reference = NLTKWordTokenizer()
    assert all(words_of(t) == reference.tokenize(t) for t in texts)
