"""DPO on preference pairs with the supplement's Alpaca template, the reference model a frozen copy of the initial
policy: what ``scripts/dpo.py`` runs."""

from __future__ import annotations

import copy
import random
from pathlib import Path

from cs336_basics.toolkit.data_paths import SharedDataUnavailable
from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.dpo import PreferencePair, fetch_hh_pairs, load_preference_jsonl
from cs336_alignment.dpo_loop import train_dpo
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import load_policy, open_metrics
from cs336_alignment.training.configs import DPORunConfig


def load_pairs(source: str) -> list[PreferencePair]:
    """Anthropic HH for ``hh`` (``SharedDataUnavailable`` offline, saying what to pass instead), else the
    preference JSONL at ``source``."""
    if source != "hh":
        return load_preference_jsonl(source)
    try:
        return fetch_hh_pairs()
    except SharedDataUnavailable as err:
        message = f"Anthropic HH is not available offline ({err}); pass --pairs <local pairs.jsonl>"
        raise SharedDataUnavailable(message) from err


def train_dpo_on_pairs(cfg: DPORunConfig) -> Path:
    """Split the shuffled pairs into validation and training, train, and write ``metrics.jsonl``, ``dpo.png`` and
    ``checkpoint/`` under the output folder, which it returns."""
    pairs = load_pairs(cfg.pairs)
    random.Random(cfg.dpo.seed).shuffle(pairs)
    val_size = min(cfg.val_size, len(pairs) // 10)
    val, train = pairs[:val_size], pairs[val_size:]
    policy, tokenizer = load_policy(cfg.policy)
    reference = copy.deepcopy(policy)
    if cfg.ref_device:
        reference.to(cfg.ref_device)
    out_dir = Path(cfg.output.out_dir)

    def checkpoint(step: int) -> None:
        save_policy(policy, tokenizer, out_dir / "checkpoint")

    with open_metrics(cfg.output, "dpo", cfg) as logger:
        train_dpo(policy, reference, tokenizer, train, val, cfg.dpo, lambda r: logger.log(**r), checkpoint)
    records = read_metrics(out_dir / "metrics.jsonl")
    plot_metrics(records, ["loss", "val_accuracy", "val_loss"], out_dir / "dpo.png", f"DPO (beta={cfg.dpo.beta})")
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'dpo.png'}  checkpoint: {out_dir / 'checkpoint'}")
    return out_dir
