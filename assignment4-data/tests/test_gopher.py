"""The handout's Gopher rules, one case per rule (boundaries checked against hand-counted word totals)."""

import random
import re

import pytest
from cs336_data.gopher import _ELLIPSIS_LINE_END, GopherConfig, gopher_rejection_reason, words_of
from cs336_data.treebank_words import ChunkTokenizer
from nltk.tokenize import NLTKWordTokenizer

from .adapters import run_gopher_quality_filter

NLTK = NLTKWordTokenizer()  # the reference: NLTK itself, with its own (regex-module) patterns
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
        words = NLTK.tokenize(text)
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

    texts = [extract_text_from_html_bytes((fixtures_dir / "moby.html").read_bytes())]
    texts += [chunk for _, chunk in zip(range(40), wikipedia_chunks())]
    texts += ["He said \"don't\" -- (twice)... can't; 'tis 3.5% at $4, «ok» — “fine”! Mr. Smith."]
    assert all(words_of(t) == NLTK.tokenize(t) for t in texts)


# Each string aims at one place where NLTK's rules look past a whitespace-separated chunk, or at the cache's own
# machinery (its marker and separator characters, the text's end).
ADVERSARIAL = [
    "",
    "   \n\t ",
    '"Quoted at the start," she said. "And again" after a space,\n"after a newline"\t"after a tab".',
    "''Two quotes'' at the start, then ''after a space'' and\n''after a newline'' and ``backticks``.",
    "The students' books and the teachers' pens' tips; end' \nnext' \tthird'",
    "Plural' followed by space' and newline'\nand tab'\tand end'",
    "It ends with a period and closing marks. ) ' » ”",
    "It ends with a period and closing marks.) '\n\n",
    'Final period inside quotes."\n',
    "An ellipsis at the end...",
    "Dots .. and ... and .... in the middle. And the end .",
    "Trailing colon:",
    "Trailing comma,",
    "a,, b,,c :x 3,5 4:30 x: ,",
    "I cannot, Cannot, CANNOT; gimme gonna gotta lemme wanna wannabe Wanna\nwanna\twanna",
    "'Tis 'twas d'ye more'n can't won't I'm they're we've you'll he'd 'TWAS",
    "(brackets) [square] {curly} <angle> --double-dash-- – en — em ‒ figure ― bar",
    "«chevrons» “curly” ‘single’ „low“ `tick' ``double ticks''",
    "Symbols; @user #tag $5 50% a&b x*y ?! !? ¿¡",
    "Unicode\u00a0no-break\u2003em-space\x1cfile-sep\x85next-line\u2028line-sep\u3000ideographic space",
    "After nbsp\u00a0\"quote and\u2003''two and end'\u00a0more",
    "Nul\x00inside a chunk, \x00 alone and \"\x00 quoted\x00' before the end.",
    "Control \x00 nul \x01 one \x02 \x03 \x04 \x05 marks\x00 and \"\x01 quoted\x05'",
    "\" \"\" \"\"\" ' '' ''' \"' '\" x''' '''x",
    "Numbers 3.14 1,000 2.5% -7 +8 1/2 ½ ² ٣ and 3.",
    "Straße ünï 日本語 l33t x_y ok. ok.. ok...",
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_tokenizer_matches_nltk_on_adversarial_text(text):
    assert words_of(text) == NLTK.tokenize(text)
    assert ChunkTokenizer().tokenize(text) == NLTK.tokenize(text)  # cold cache


PIECES = (
    ["word", "Word", "can", "not", "cannot", "wanna", "gon", "na", "'t", "is", "was", "ye", "d", "more", "n't"]
    + ['"', "''", "'", "`", "``", "«", "»", "“", "”", "‘", "’", "„", ".", "..", "...", "…", ",", ":", ";", "?", "!"]
    + ["(", ")", "[", "]", "{", "}", "<", ">", "-", "--", "–", "—", "$", "%", "&", "@", "#", "*", "3", "3.5", "x1"]
    + ["é", "日本", "\x00", "\x01", "\x04", "s", "re", "ll", "m"]
)
SPACES = [" ", " ", " ", "  ", "\n", "\t", " \n", "\n ", "\u00a0", "\r\n", "\x0b", "\u2003", ""]


def test_tokenizer_matches_nltk_on_random_text():
    """Random mixtures of everything above, through one small cache (reused across texts and emptied when full)."""
    rng = random.Random(1)
    tokenizer = ChunkTokenizer(max_entries=300)
    for _ in range(1500):
        parts = [rng.choice(SPACES)] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 25)):
            parts += [rng.choice(PIECES) for _ in range(rng.choice((1, 1, 2, 3)))] + [rng.choice(SPACES)]
        if rng.random() < 0.5:
            parts.pop()
        text = "".join(parts)
        expected = NLTK.tokenize(text)
        assert tokenizer.tokenize(text) == expected, repr(text)
        letters = sum(1 for w in expected if any(c.isalpha() for c in w))
        assert tokenizer.statistics(text) == (len(expected), sum(map(len, expected)), letters), repr(text)


def reference_rejection_reason(text: str, config: GopherConfig) -> str | None:
    """The handout's rules written plainly: NLTK's words, one line at a time."""
    words = NLTK.tokenize(text)
    if not words or not config.min_words <= len(words) <= config.max_words:
        return "word_count"
    if not config.min_mean_word_length <= sum(map(len, words)) / len(words) <= config.max_mean_word_length:
        return "mean_word_length"
    lines = text.splitlines()
    ellipsis = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
    if lines and ellipsis / len(lines) > config.max_ellipsis_line_fraction:
        return "ellipsis_lines"
    if sum(1 for w in words if any(c.isalpha() for c in w)) / len(words) < config.min_alphabetic_word_fraction:
        return "alphabetic_words"
    return None


def test_rejection_reasons_match_the_plain_rules_on_random_text():
    """Every rule decides some of these texts (a one-word minimum lets the later rules speak)."""
    rng = random.Random(3)
    config = GopherConfig(min_words=1, max_words=40)
    plain = ["word", "words", "longer", "text", "...", "…", "a", "x", "supercalifragilistic"]
    reasons = set()
    for _ in range(1500):
        pieces = rng.choice((PIECES, plain, PIECES + plain * 3))
        text = "".join(rng.choice(pieces) + rng.choice(SPACES) for _ in range(rng.randint(1, 50)))
        expected = reference_rejection_reason(text, config)
        assert gopher_rejection_reason(text, config) == expected, repr(text)
        reasons.add(expected)
    assert reasons == {None, "word_count", "mean_word_length", "ellipsis_lines", "alphabetic_words"}


def test_contraction_rules_are_the_ones_merged_into_one_pass():
    """treebank_words merges NLTK's CONTRACTIONS2 substitutions into one pass, proven for exactly these words."""
    words = [re.sub(r"\\b|\(\?i\)|\(\?#X\)|\(\?=\\s\)|[()]", "", p.pattern) for p in NLTKWordTokenizer.CONTRACTIONS2]
    assert words == ["cannot", "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna"]


def test_ellipsis_lines_counted_as_per_line_rstrip():
    """Lines ending in an ellipsis, counted in one regex pass, against the handout's per-line definition."""
    rng = random.Random(2)
    pieces = ["word", "...", "…", ".", "..", " ", "\t", "\u00a0", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85"]
    pieces += ["\u2028", "\u2029"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        expected = sum(1 for line in text.splitlines() if line.rstrip().endswith(("...", "…")))
        assert len(_ELLIPSIS_LINE_END.findall(text)) == expected, repr(text)


def test_statistics_reject_too_many_chunks_before_tokenising():
    assert ChunkTokenizer().statistics("word " * 11, max_chunks=10) is None
    assert ChunkTokenizer().statistics("word " * 10, max_chunks=10) == (10, 40, 10)
