"""Tokenizer: exact agreement with tiktoken's GPT-2 encoding, round trips, special tokens, streaming."""

from __future__ import annotations

import io
import random
import unicodedata

import pytest
import regex
from cs336_basics.bpe import save_vocab_merges, train_bpe
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.vocab_files import load_vocab_merges
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import fixture_path

EOT = "<|endoftext|>"
FIXTURE_TEXTS = ["address.txt", "german.txt", "tinystories_sample.txt", "tinystories_sample_5M.txt"]
SPECIAL_CASES = [
    "",
    "s",
    "🙃",
    "Hello, how are you?",
    "Héllò hôw are ü? 🙃",
    "Héllò hôw <|endoftext|><|endoftext|> are ü? 🙃<|endoftext|>",
    "a\n\n\nb",
    "<|endoftext|>\n\n",
    "<|endoftext|>\n\ntesting!",
    "it's we'll they've I'M  \t\n  spaces   end   ",
    "1234567 3.14 ١٢٣ 二十 Ⅻ ½",
    "\x00\x1c\x1f\x85\u00a0\u2028\u3000 mixed\r\nlines\r\n",
]


@pytest.fixture(scope="session")
def gpt2_files():
    return fixture_path("gpt2_vocab.json"), fixture_path("gpt2_merges.txt")


@pytest.fixture(scope="session")
def gpt2_tokenizer(gpt2_files) -> Tokenizer:
    return Tokenizer.from_files(*gpt2_files, special_tokens=[EOT])


@pytest.fixture(scope="session")
def gpt2_plain_tokenizer(gpt2_files) -> Tokenizer:
    return Tokenizer.from_files(*gpt2_files)


@pytest.mark.parametrize("text", SPECIAL_CASES)
def test_encode_matches_tiktoken_on_edge_cases(gpt2_tokenizer, gpt2_encoding, text):
    ids = gpt2_tokenizer.encode(text)
    assert ids == gpt2_encoding.encode(text, allowed_special={EOT})
    assert gpt2_tokenizer.decode(ids) == text


@pytest.mark.parametrize("name", FIXTURE_TEXTS)
def test_encode_and_stream_match_tiktoken_on_fixtures(gpt2_tokenizer, gpt2_encoding, name):
    path = fixture_path(name)
    text = path.read_text(encoding="utf-8")
    expected = gpt2_encoding.encode(text, allowed_special={EOT})
    assert gpt2_tokenizer.encode(text) == expected
    with open(path, encoding="utf-8") as f:
        assert list(gpt2_tokenizer.encode_iterable(f)) == expected
    assert gpt2_tokenizer.decode(expected) == text


def test_without_special_tokens_the_marker_is_ordinary_text(gpt2_plain_tokenizer, gpt2_encoding):
    text = fixture_path("tinystories_sample.txt").read_text(encoding="utf-8")
    ids = gpt2_plain_tokenizer.encode(text)
    assert ids == gpt2_encoding.encode_ordinary(text)
    assert 50256 not in ids and gpt2_plain_tokenizer.decode(ids) == text


def test_decode_single_ids(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("Hello, how are you?")
    assert ids == [15496, 11, 703, 389, 345, 30]
    assert [gpt2_tokenizer.decode([i]) for i in ids] == ["Hello", ",", " how", " are", " you", "?"]


def _assigned(rng: random.Random, low: int, high: int) -> str:
    """A random code point that Python's Unicode tables know (the regex engines disagree on newer ones)."""
    while unicodedata.category(char := chr(rng.randrange(low, high))) in ("Cn", "Cs"):
        pass
    return char


def _random_unicode(rng: random.Random, length: int) -> str:
    pools = [
        lambda: rng.choice(" \n\t\r'"),
        lambda: chr(rng.randrange(0x20, 0x7F)),
        lambda: _assigned(rng, 0x80, 0x800),
        lambda: _assigned(rng, 0x800, 0x10000),
        lambda: _assigned(rng, 0x10000, 0x30000),
        lambda: rng.choice(["'s", "'ll", "'ve", " the", "  ", "\n\n", EOT, "<|", "123"]),
    ]
    return "".join(rng.choice(pools)() for _ in range(length))


def test_random_unicode_matches_tiktoken(gpt2_tokenizer, gpt2_encoding):
    rng = random.Random(1234)
    for _ in range(300):
        text = _random_unicode(rng, rng.randrange(0, 80))
        ids = gpt2_tokenizer.encode(text)
        assert ids == gpt2_encoding.encode(text, allowed_special={EOT}), repr(text)
        assert gpt2_tokenizer.decode(ids) == text


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"allowed_special": set()},
        {"allowed_special": {EOT}, "disallowed_special": "all"},
        {"allowed_special": set(), "disallowed_special": "all"},
        {"allowed_special": set(), "disallowed_special": {EOT}},
    ],
)
def test_special_token_options_match_tiktoken(gpt2_tokenizer, gpt2_encoding, options):
    """tiktoken's allowed_special/disallowed_special model; only the default differs (ours allows every special)."""
    reference = {"allowed_special": {EOT}, "disallowed_special": (), **options}
    rng = random.Random(99)
    for _ in range(100):
        text = _random_unicode(rng, rng.randrange(0, 40))
        try:
            expected = gpt2_encoding.encode(text, **reference)
        except ValueError:
            with pytest.raises(ValueError, match="disallowed"):
                gpt2_tokenizer.encode(text, **options)
            continue
        assert gpt2_tokenizer.encode(text, **options) == expected, repr(text)


def test_special_token_options_on_overlapping_tokens(gpt2_files):
    double = EOT + EOT
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT, double])
    assert tokenizer.encode(EOT * 3, allowed_special={EOT}) == [50256] * 3
    assert tokenizer.encode(EOT * 3, allowed_special={double}) == [50257, *tokenizer.encode_ordinary(EOT)]
    with pytest.raises(ValueError, match="not special tokens of this tokenizer"):
        tokenizer.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(TypeError, match="a set of special tokens"):
        tokenizer.encode("x", allowed_special=EOT)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cn", "Cs")), max_size=60))
def test_hypothesis_text_matches_tiktoken(gpt2_plain_tokenizer, gpt2_encoding, text):
    assert gpt2_plain_tokenizer.encode(text) == gpt2_encoding.encode_ordinary(text)


def test_overlapping_special_tokens_prefer_the_longest(gpt2_files):
    double = EOT + EOT
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT, double])
    assert tokenizer.special_token_ids == {EOT: 50256, double: 50257}
    ids = tokenizer.encode(f"Hello, how {double} are you?{EOT}")
    assert ids.count(50257) == 1 and ids.count(50256) == 1
    assert tokenizer.decode(ids) == f"Hello, how {double} are you?{EOT}"
    assert tokenizer.encode(EOT * 3) == [50257, 50256]


def test_special_token_reuses_existing_id_or_is_appended():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"<s>"}
    tokenizer = Tokenizer(vocab, [], special_tokens=["<s>", "</s>"])
    assert tokenizer.special_token_ids == {"<s>": 256, "</s>": 257}
    assert tokenizer.vocab_size == 258
    assert tokenizer.encode("a<s>b</s>") == [97, 256, 98, 257]
    assert vocab == {i: bytes([i]) for i in range(256)} | {256: b"<s>"}  # the caller's dict is untouched


def naive_encode(text: str, merges: list[tuple[bytes, bytes]], id_of: dict[bytes, int]) -> list[int]:
    """Reference: apply every merge, in creation order, to each pre-token."""
    pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    ids = []
    for pretoken in regex.findall(pattern, text):
        parts = [bytes([b]) for b in pretoken.encode("utf-8")]
        for left, right in merges:
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    out.append(left + right)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        ids.extend(id_of[p] for p in parts)
    return ids


def test_trained_tokenizer_matches_naive_merge_application(tmp_path):
    """A tokenizer from our own training (saved and reloaded) encodes like the textbook algorithm."""
    corpus = fixture_path("corpus.en")
    vocab, merges = train_bpe(corpus, 400, [EOT])
    save_vocab_merges(vocab, merges, tmp_path / "vocab.json", tmp_path / "merges.txt")
    tokenizer = Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt", special_tokens=[EOT])
    text = corpus.read_text(encoding="utf-8")[:20_000]
    id_of = {token: token_id for token_id, token in vocab.items()}
    assert tokenizer.encode(text) == naive_encode(text, merges, id_of)
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize("seed", range(5))
def test_encode_iterable_equals_encode_for_any_chunking(gpt2_files, seed):
    """Tiny stream buffers force many cuts, including inside special tokens and newline runs."""
    double = EOT + EOT
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT, double])
    tokenizer.stream_chunk_chars = 7
    rng = random.Random(seed)
    alphabet = ["a", "\n", "\n\n\n", " ", "  ", "b!", "'ll", EOT, "<|end", "é", "🙃"]
    text = "".join(rng.choice(alphabet) for _ in range(400))
    pieces, i = [], 0
    while i < len(text):
        step = rng.randrange(1, 12)
        pieces.append(text[i : i + step])
        i += step
    assert list(tokenizer.encode_iterable(pieces)) == tokenizer.encode(text)


def test_encode_iterable_handles_newline_runs_across_lines(gpt2_tokenizer, gpt2_encoding):
    text = "a\n\n\nb\n\n\n\n<|endoftext|>\n\n\nc  \n"
    lines = io.StringIO(text)
    assert list(gpt2_tokenizer.encode_iterable(lines)) == gpt2_encoding.encode(text, allowed_special={EOT})
    assert list(gpt2_tokenizer.encode_iterable(iter(text))) == gpt2_encoding.encode(text, allowed_special={EOT})


def test_encode_iterable_is_lazy(gpt2_tokenizer):
    """The first ids arrive before the input is exhausted (memory stays bounded on any file)."""
    gpt2_tokenizer_stream = Tokenizer(gpt2_tokenizer.vocab, gpt2_tokenizer.merges, [EOT])
    gpt2_tokenizer_stream.stream_chunk_chars = 1000
    consumed = 0

    def lines():
        nonlocal consumed
        for _ in range(100_000):
            consumed += 1
            yield "the quick brown fox jumps over the lazy dog\n"

    stream = gpt2_tokenizer_stream.encode_iterable(lines())
    assert next(stream) == gpt2_tokenizer.encode("the")[0]
    assert consumed < 100


def test_cache_eviction_keeps_results_exact(gpt2_files, gpt2_encoding):
    tokenizer = Tokenizer.from_files(*gpt2_files)
    tokenizer.max_cache_entries = 10
    text = fixture_path("german.txt").read_text(encoding="utf-8")
    for line in text.splitlines()[:50]:
        assert tokenizer.encode(line) == gpt2_encoding.encode_ordinary(line)
    assert len(tokenizer._cache) < 200


def test_errors_are_clear(gpt2_tokenizer):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        gpt2_tokenizer.decode([10**9])
    with pytest.raises(ValueError, match="single-byte"):
        Tokenizer({0: b"a"}, [])
    with pytest.raises(ValueError, match="missing from the vocab"):
        Tokenizer({i: bytes([i]) for i in range(256)}, [(b"a", b"b")])


def test_from_files_reads_gpt2_format(gpt2_files):
    vocab, merges = load_vocab_merges(*gpt2_files)
    tokenizer = Tokenizer.from_files(*gpt2_files, special_tokens=[EOT])
    assert tokenizer.vocab == vocab and tokenizer.merges == merges
    assert tokenizer.special_token_ids == {EOT: 50256} and tokenizer.vocab_size == 50257
