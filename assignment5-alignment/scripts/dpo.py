"""DPO on preference pairs with the supplement's Alpaca template; the reference model is the initial policy.

Online (Anthropic HH): uv run python assignment5-alignment/scripts/dpo.py --pairs hh --policy.model <sft checkpoint>
Offline (local pairs): ... --pairs my_pairs.jsonl   (records {"instruction", "chosen", "rejected"})
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path

from cs336_alignment.dpo import fetch_hh_pairs, load_preference_jsonl
from cs336_alignment.dpo_loop import DPOConfig, train_dpo
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import OutputConfig, PolicyConfig, load_policy, open_metrics
from cs336_basics.toolkit.cli import parse_config
from cs336_basics.toolkit.data_paths import SharedDataUnavailable
from cs336_basics.toolkit.metrics import read_metrics


@dataclass
class DPOScriptConfig:
    """DPO of a policy against a frozen copy of itself on preference pairs (Anthropic HH or a local JSONL)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(out_dir="runs/dpo"))
    dpo: DPOConfig = field(default_factory=DPOConfig)
    pairs: str = field(default="hh", metadata={"help": "hh (Anthropic HH, downloaded when online) or a JSONL path"})
    val_size: int = field(default=200, metadata={"help": "validation pairs held out (at most a tenth of them)"})
    ref_device: str = field(default="", metadata={"help": "device of the reference model (default: the policy's)"})


def main() -> None:
    cfg = parse_config(DPOScriptConfig)
    if cfg.pairs == "hh":
        try:
            pairs = fetch_hh_pairs()
        except SharedDataUnavailable as err:
            message = f"Anthropic HH is not available offline ({err}); pass --pairs <local pairs.jsonl>"
            raise SystemExit(message) from err
    else:
        pairs = load_preference_jsonl(cfg.pairs)
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


if __name__ == "__main__":
    main()
