"""The command-line scripts, chained as a user runs them: train BPE → tokenise → train → generate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cs336_basics.bpe import load_vocab_merges
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.entry_points import help_probe, load_entry_point_module

from .conftest import fixture_path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(name: str, config_class: str, argv: list[str]):
    module = load_entry_point_module(SCRIPTS / f"{name}.py")
    return module.main(parse_config(getattr(module, config_class), argv))


def test_scripts_chain_from_text_to_samples(tmp_path, capsys):
    text = fixture_path("corpus.en")
    tok = tmp_path / "tok"
    stats = run(
        "train_bpe",
        "TrainBPEConfig",
        ["--input", str(text), "--vocab_size", "400", "--out_dir", str(tok), "--no-progress"],
    )
    vocab, merges = load_vocab_merges(tok / "vocab.json", tok / "merges.txt")
    assert len(vocab) == stats["vocab_size"] == 400 and len(merges) == 400 - 257
    assert json.loads((tok / "stats.json").read_text())["longest_token_bytes"] == stats["longest_token_bytes"]

    tokens = tmp_path / "tokens.bin"
    files = ["--vocab", str(tok / "vocab.json"), "--merges", str(tok / "merges.txt")]
    count = run(
        "tokenize_dataset", "TokenizeConfig", ["--input", str(text), "--output", str(tokens), *files, "--no-progress"]
    )
    reference = Tokenizer(vocab, merges, ["<|endoftext|>"]).encode(text.read_text(encoding="utf-8"))
    np.testing.assert_array_equal(np.memmap(tokens, dtype=np.uint16, mode="r"), reference)
    assert count == len(reference)

    model = [
        "--vocab",  # the model's vocabulary is the tokenizer's
        str(tok / "vocab.json"),
        "--model.context_length",
        "32",
        "--model.d_model",
        "32",
        "--model.num_layers",
        "1",
        "--model.num_heads",
        "2",
        "--model.d_ff",
        "64",
    ]
    run_dir = tmp_path / "run"
    summary = run(
        "train",
        "TrainConfig",
        [
            "--train_data",
            str(tokens),
            "--valid_data",
            str(tokens),
            "--out_dir",
            str(run_dir),
            *model,
            "--max_iters",
            "30",
            "--warmup_iters",
            "3",
            "--batch_size",
            "8",
            "--eval_interval",
            "15",
            "--eval_batches",
            "2",
            "--max_lr",
            "1e-2",
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert summary["iterations"] == 30 and (run_dir / "loss_curve.png").exists()

    texts = run(
        "generate",
        "GenerateConfig",
        [
            "--checkpoint",
            str(run_dir / "checkpoint.pt"),
            *files,
            "--prompt",
            "Once upon",
            "--num_samples",
            "2",
            "--max_new_tokens",
            "10",
            "--device",
            "cpu",
        ],
    )
    assert len(texts) == 2 and all(t.startswith("Once upon") for t in texts)
    assert "--- sample 2 ---" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["train", "demo", "generate", "accounting_report"])
def test_help_does_not_load_torch(name):
    """--help answers without importing torch (seconds of start-up): the configs live in torch-free modules."""
    help_text, loaded = help_probe(SCRIPTS / f"{name}.py", ("torch",))
    assert "--help" in help_text and loaded == [], help_text[-300:]
