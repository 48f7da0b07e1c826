"""Tables, plots and metrics of the filter-versus-raw runs: per run, and per budget and arm over seeds."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic, write_jsonl_atomic, write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:purple", "tab:orange", "tab:brown")


def summarise(results: list[dict], heldout: list[str]) -> dict[str, dict]:
    """Per budget, arm and held-out set: mean over seeds and spread (max - min)."""
    summary: dict[str, dict] = {}
    for key in dict.fromkeys((r["budget"], r["arm"]) for r in results):
        rows = [r for r in results if (r["budget"], r["arm"]) == key]
        entry = {"budget": key[0], "arm": key[1], "seeds": len(rows)}
        entry |= {"epochs": rows[0]["epochs"], "tokens_trained": rows[0]["tokens_trained"]}
        for loss in (f"{name}_loss" for name in heldout):
            values = [r[loss] for r in rows if loss in r]
            if values:
                entry[loss] = {"mean": statistics.fmean(values), "spread": max(values) - min(values)}
        summary[f"{key[0]}/{key[1]}"] = entry
    return summary


def markdown(results: list[dict], summary: dict[str, dict], meta: dict, heldout: list[str]) -> str:
    def mean_spread(s: dict, key: str) -> str:
        return f"{s[key]['mean']:.4f} ± {s[key]['spread'] / 2:.4f}" if key in s else "-"

    rows = []
    for s in summary.values():
        c = meta["corpora"][s["arm"]]
        rows.append([
            s["budget"], s["arm"], f"{c['documents']:,}", f"{c['tokens']:,}", f"{s['tokens_trained']:,}",
            f"{s['epochs']:.2f}", *(mean_spread(s, f"{name}_loss") for name in heldout),
        ])  # fmt: skip
    headers = ["budget", "corpus", "documents", "corpus tokens", "tokens trained", "epochs"]
    lines = [
        markdown_table([*headers, *(f"{name} loss" for name in heldout)], rows, align="llrrrr" + "l" * len(heldout))
    ]
    lines += ["", "± is half the range over seeds. Per run:", ""]
    rows = []
    for r in results:
        losses = (f"{r.get(f'{name}_loss', math.nan):.4f}" for name in heldout)
        rows.append([r["budget"], r["arm"], r["seed"], *losses, f"{r['final_train_loss']:.4f}", f"{r['seconds']:.0f}"])
    headers = ["budget", "corpus", "seed", *heldout, "final train loss", "seconds"]
    lines.append(markdown_table(headers, rows, align="llr" + "r" * (len(heldout) + 2)))
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, results: list[dict], meta: dict, heldout: list[str]) -> str:
    """``results.json`` (runs and summary) and ``results.md`` with a loss column per held-out set; returns the
    Markdown."""
    summary = summarise(results, heldout)
    table = markdown(results, summary, meta, heldout)
    write_json_atomic(out_dir / "results.json", {"runs": results, "summary": summary}, indent=1)
    write_text_atomic(out_dir / "results.md", table)
    return table


def write_budget_plot(
    out_dir: Path, budget: str, curves: dict[tuple[str, str, int], list[dict]], tokens_per_step: int, curve_set: str
) -> Path:
    """``loss_curves_<budget>.png``: the loss on held-out set ``curve_set`` against training tokens, one line per arm
    and seed (the first seed solid, the others dashed)."""
    from cs336_basics.toolkit.figures import pyplot, save_figure

    runs = {(arm, seed): records for (b, arm, seed), records in curves.items() if b == budget}
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    colours = dict(zip(dict.fromkeys(arm for arm, _ in runs), COLOURS))
    first_seed = min(seed for _, seed in runs)
    for (arm, seed), records in runs.items():
        points = [(r["step"] * tokens_per_step / 1e6, r["val_loss"]) for r in records if "val_loss" in r]
        if points:
            xs, ys = zip(*points)
            style = "-" if seed == first_seed else "--"
            ax.plot(xs, ys, color=colours[arm], linestyle=style, label=f"{arm} (seed {seed})")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel(f"{curve_set} loss")
    ax.set_title(f"Same model, same tokens (budget: {budget}):\nraw crawl text vs filtered")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out_dir / f"loss_curves_{budget}.png")


def write_metrics(out_dir: Path, curves: dict[tuple[str, str, int], list[dict]]) -> Path:
    """Every run's metric records in one ``metrics.jsonl``, tagged with budget, arm and seed."""
    records = (
        {"budget": budget, "arm": arm, "seed": seed, **record}
        for (budget, arm, seed), run_records in curves.items()
        for record in run_records
    )
    return write_jsonl_atomic(out_dir / "metrics.jsonl", records)
