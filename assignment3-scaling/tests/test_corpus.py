"""The corpus builder: files in, a uint16 token file out that decodes back to the same documents."""

import numpy as np
import pytest
from cs336_basics.tokenizer import Tokenizer
from cs336_scaling.corpus import END_OF_TEXT, CorpusConfig, build_corpus, document_paths


@pytest.fixture
def sources(tmp_path):
    root = tmp_path / "src"
    (root / "pkg" / "tests").mkdir(parents=True)
    texts = {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x * {i}  # café\n" * (i + 1) for i in range(6)}
    texts["pkg/tests/test_skip.py"] = "assert False\n"
    texts["pkg/notes.txt"] = "not python\n"
    for name, text in texts.items():
        (root / name).write_text(text)
    return root, {k: v for k, v in texts.items() if k.endswith(".py") and "tests" not in k}


def test_byte_level_corpus_holds_every_document_once(sources, tmp_path):
    root, texts = sources
    config = CorpusConfig(sources=(str(root),), out_dir=str(tmp_path / "out"), vocab_size=256)
    paths = document_paths(config)
    assert sorted(p.relative_to(root).as_posix() for p in paths) == sorted(texts)
    tokens = np.fromfile(build_corpus(config, progress=False), dtype="<u2")
    documents = bytes(tokens.astype(np.uint8)).split(b"\0")
    assert documents[-1] == b""
    assert documents[:-1] == [p.read_bytes() for p in paths]


def test_bpe_corpus_decodes_to_the_documents_and_respects_the_cap(sources, tmp_path):
    root, texts = sources
    out = tmp_path / "out"
    config = CorpusConfig(sources=(str(root),), out_dir=str(out), vocab_size=300, workers=1)
    tokens = np.fromfile(build_corpus(config, progress=False), dtype="<u2")
    tokenizer = Tokenizer.from_files(out / "vocab.json", out / "merges.txt", special_tokens=[END_OF_TEXT])
    decoded = tokenizer.decode(tokens.tolist())
    assert decoded.split(END_OF_TEXT)[:-1] == [p.read_text() for p in document_paths(config)]
    assert tokens.max() < 300
    capped = CorpusConfig(sources=(str(root),), out_dir=str(tmp_path / "capped"), vocab_size=300, max_tokens=50)
    assert np.fromfile(build_corpus(capped, progress=False), dtype="<u2").tolist() == tokens[:50].tolist()


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        document_paths(CorpusConfig(sources=(str(tmp_path / "nope"),), out_dir=str(tmp_path)))
