"""Does filtering help? Train the assignment-1 model on each corpus for the same tokens, score on clean held-out text.

    PYTHONPATH=assignment1-basics/src python3 assignment4-data/scripts/filter_vs_raw.py \\
        --data assignment4-data/runs/filter_vs_raw/data --out_dir results/filter_vs_raw      # one H200, ~5 min

Reads ``<data>/meta.json`` and the uint16 token files that ``prepare_filter_experiment.py`` writes. For every token
budget, arm (``raw``, ``filtered``, ``filtered_no_quality``) and seed: the same :class:`TransformerLM`, optimiser and
schedule, the budget's training tokens (windows drawn at random from the arm's corpus: an arm smaller than the budget
is seen more than once, reported as epochs), the held-out documentation loss ``--evals_per_run`` times (the curve;
its windows depend on the seed), and at the end the loss over every token of each held-out set (non-overlapping
windows, the same for every run). A budget is a number of tokens or a corpus name (one epoch of that corpus): by
default one epoch of ``filtered_no_quality`` (no arm repeats much) and one epoch of ``raw`` (the small filtered
corpora are repeated). Writes ``results.md`` and ``results.json`` (per run; per budget and arm, mean and spread over
seeds), ``loss_curves_<budget>.png`` and ``metrics.jsonl``. Needs only torch, numpy, matplotlib and tqdm (and
``cs336_basics`` on the path).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from cs336_basics.checkpoint import load_checkpoint
from cs336_basics.data import load_tokens
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.nn_utils import cross_entropy
from cs336_basics.toolkit.device import autocast_context, select_device
from cs336_basics.toolkit.figures import pyplot, save_figure
from cs336_basics.toolkit.metrics import read_metrics
from cs336_basics.toolkit.tables import markdown_table
from cs336_basics.train import TrainConfig, train

HELDOUT = ("heldout_docs", "heldout_articles")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("assignment4-data/runs/filter_vs_raw/data"))
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--arms", nargs="+", default=["raw", "filtered", "filtered_no_quality"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--budgets", nargs="+", default=["filtered_no_quality", "raw"], help="tokens, or a corpus name")
    p.add_argument("--context_length", type=int, default=256)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--num_layers", type=int, default=8)
    p.add_argument("--num_heads", type=int, default=8)
    p.add_argument("--d_ff", type=int, default=1344)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_lr", type=float, default=1e-3)
    p.add_argument("--warmup_fraction", type=float, default=0.05)
    p.add_argument("--evals_per_run", type=int, default=20)
    p.add_argument("--eval_batches", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--max_seconds_per_run", type=float, default=None, help="safety stop (tokens then differ)")
    p.add_argument("--progress", action="store_true")
    return p.parse_args()


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, tokens: np.ndarray, context: int, batch: int, device: torch.device) -> float:
    """Mean next-token loss over every token of ``tokens``, in non-overlapping windows (a partial tail is dropped)."""
    windows = (len(tokens) - 1) // context
    if windows == 0:
        raise ValueError(f"held-out set of {len(tokens)} tokens is shorter than one window of {context}")
    data = torch.from_numpy(np.asarray(tokens[: windows * context + 1], dtype=np.int64))
    model.eval()
    total, count = 0.0, 0
    for start in range(0, windows, batch):
        rows = range(start, min(start + batch, windows))
        x = torch.stack([data[r * context : (r + 1) * context] for r in rows]).to(device)
        y = torch.stack([data[r * context + 1 : (r + 1) * context + 1] for r in rows]).to(device)
        with autocast_context(device, "auto"):
            loss = cross_entropy(model(x), y)
        total += loss.item() * x.numel()
        count += x.numel()
    return total / count


def budget_tokens(budget: str, meta: dict) -> int:
    if budget.isdigit():
        return int(budget)
    if budget not in meta["corpora"]:
        raise SystemExit(f"budget {budget!r} is neither a number of tokens nor a corpus in meta.json")
    return meta["corpora"][budget]["tokens"]


def run_arm(args, meta: dict, budget: str, arm: str, seed: int, device: torch.device) -> dict:
    model_config = ModelConfig(
        vocab_size=meta["vocab_size"],
        context_length=args.context_length,
        d_model=args.d_model,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        d_ff=args.d_ff,
    )
    steps = max(1, budget_tokens(budget, meta) // (args.batch_size * args.context_length))
    run_dir = args.out_dir / "runs" / budget / f"{arm}_seed{seed}"
    config = TrainConfig(
        train_data=str(args.data / f"{arm}.bin"),
        valid_data=str(args.data / "heldout_docs.bin"),
        out_dir=str(run_dir),
        model=model_config,
        batch_size=args.batch_size,
        max_iters=steps,
        max_lr=args.max_lr,
        min_lr=args.max_lr / 10,
        warmup_iters=max(1, int(args.warmup_fraction * steps)),
        eval_interval=max(1, steps // args.evals_per_run),
        eval_batches=args.eval_batches,
        checkpoint_interval=steps,
        log_interval=min(10, steps),
        device=args.device,
        compile=args.compile,
        seed=seed,
        max_seconds=args.max_seconds_per_run,
        progress=args.progress,
    )
    started = time.perf_counter()
    summary = train(config)
    model = TransformerLM(model_config, device=device)
    load_checkpoint(summary["checkpoint"], model)
    corpus_tokens = meta["corpora"][arm]["tokens"]
    trained = summary["iterations"] * args.batch_size * args.context_length
    result = {
        "budget": budget,
        "arm": arm,
        "seed": seed,
        "iterations": summary["iterations"],
        "tokens_trained": trained,
        "corpus_tokens": corpus_tokens,
        "epochs": trained / corpus_tokens,
        "final_train_loss": summary["train_loss"],
        "seconds": time.perf_counter() - started,
        "tokens_per_second": summary["tokens_per_second"],
    }
    for name in HELDOUT:
        if (args.data / f"{name}.bin").exists():
            held = load_tokens(args.data / f"{name}.bin")
            result[f"{name}_loss"] = heldout_loss(model, held, args.context_length, args.batch_size, device)
    Path(summary["checkpoint"]).unlink()  # 100+ MB each; the numbers are what is kept
    return result


def summarise(results: list[dict]) -> dict[str, dict]:
    """Per budget, arm and held-out set: mean over seeds and spread (max - min)."""
    summary: dict[str, dict] = {}
    for key in dict.fromkeys((r["budget"], r["arm"]) for r in results):
        rows = [r for r in results if (r["budget"], r["arm"]) == key]
        entry = {"budget": key[0], "arm": key[1], "seeds": len(rows)}
        entry |= {"epochs": rows[0]["epochs"], "tokens_trained": rows[0]["tokens_trained"]}
        for loss in (f"{name}_loss" for name in HELDOUT):
            values = [r[loss] for r in rows if loss in r]
            if values:
                entry[loss] = {"mean": statistics.fmean(values), "spread": max(values) - min(values)}
        summary[f"{key[0]}/{key[1]}"] = entry
    return summary


def markdown(results: list[dict], summary: dict[str, dict], meta: dict) -> str:
    def mean_spread(s: dict, key: str) -> str:
        return f"{s[key]['mean']:.4f} ± {s[key]['spread'] / 2:.4f}" if key in s else "-"

    rows = []
    for s in summary.values():
        c = meta["corpora"][s["arm"]]
        rows.append([
            s["budget"], s["arm"], f"{c['documents']:,}", f"{c['tokens']:,}", f"{s['tokens_trained']:,}",
            f"{s['epochs']:.2f}", mean_spread(s, "heldout_docs_loss"), mean_spread(s, "heldout_articles_loss"),
        ])  # fmt: skip
    headers = ["budget", "corpus", "documents", "corpus tokens", "tokens trained", "epochs", "held-out docs loss"]
    lines = [markdown_table([*headers, "held-out articles loss"], rows, align="llrrrrll")]
    lines += ["", "± is half the range over seeds. Per run:", ""]
    rows = []
    for r in results:
        docs, arts = r.get("heldout_docs_loss", math.nan), r.get("heldout_articles_loss", math.nan)
        rows.append([
            r["budget"], r["arm"], r["seed"], f"{docs:.4f}", f"{arts:.4f}", f"{r['final_train_loss']:.4f}",
            f"{r['seconds']:.0f}",
        ])  # fmt: skip
    headers = ["budget", "corpus", "seed", "held-out docs", "held-out articles", "final train loss", "seconds"]
    lines.append(markdown_table(headers, rows, align="llrrrrr"))
    return "\n".join(lines) + "\n"


def plot(curves: dict[tuple[str, int], list[dict]], tokens_per_step: int, path: Path, budget: str) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    colours = dict(zip(dict.fromkeys(arm for arm, _ in curves), ("tab:red", "tab:green", "tab:blue", "tab:purple")))
    for (arm, seed), records in curves.items():
        points = [(r["step"] * tokens_per_step / 1e6, r["val_loss"]) for r in records if "val_loss" in r]
        if points:
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                color=colours[arm],
                linestyle="-" if seed == min(s for _, s in curves) else "--",
                label=f"{arm} (seed {seed})",
            )
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("held-out documentation loss")
    ax.set_title(f"Same model, same tokens (budget: {budget}): raw crawl text vs filtered")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    meta = json.loads((args.data / "meta.json").read_text())
    missing = [arm for arm in args.arms if not (args.data / f"{arm}.bin").exists()]
    if missing:
        raise SystemExit(f"no token file for {missing} in {args.data}: run prepare_filter_experiment.py")
    for budget in args.budgets:
        budget_tokens(budget, meta)  # fail before any training on a bad budget
    device = select_device(args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results, curves = [], {}
    for budget in args.budgets:
        for seed in args.seeds:
            for arm in args.arms:
                result = run_arm(args, meta, budget, arm, seed, device)
                results.append(result)
                print(json.dumps(result))
                run_dir = args.out_dir / "runs" / budget / f"{arm}_seed{seed}"
                curves[(budget, arm, seed)] = read_metrics(run_dir / "metrics.jsonl")
                summary = summarise(results)  # written after every run: a call cut short keeps what it finished
                (args.out_dir / "results.json").write_text(
                    json.dumps({"runs": results, "summary": summary}, indent=1) + "\n"
                )
                (args.out_dir / "results.md").write_text(markdown(results, summary, meta))
        budget_curves = {(arm, seed): c for (b, arm, seed), c in curves.items() if b == budget}
        plot(budget_curves, args.batch_size * args.context_length, args.out_dir / f"loss_curves_{budget}.png", budget)
    with open(args.out_dir / "metrics.jsonl", "w") as f:
        for (budget, arm, seed), records in curves.items():
            for record in records:
                f.write(json.dumps({"budget": budget, "arm": arm, "seed": seed, **record}) + "\n")
    print((args.out_dir / "results.md").read_text())


if __name__ == "__main__":
    main()
