"""The handout's experiments as named sets of time-boxed training runs, with their table, plots and raw metrics.

``run_experiment(cfg)`` trains each run of the named experiment for ``seconds`` of training time (the
:class:`~cs336_basics.train.TrainingClock`: compilation and validation excluded, so runs compare at equal wall
time), then writes under ``out_dir/<experiment>/``: ``results.json`` (every run's settings and outcome, and the
machine), ``table.md``, ``val_loss_vs_steps.png``, ``val_loss_vs_time.png``, an experiment-specific plot, and
each run's ``metrics.jsonl`` under ``runs/``.

Experiments (the baseline is the handout's TinyStories model with AdamW and the cosine schedule):

* ``learning_rate``: a sweep up to rates that diverge; the best rate and the edge of stability.
* ``batch_size``: batch 1 to 2048 with the rate scaled by sqrt(batch/128) from the best rate, plus the largest
  batch that fits in memory.
* ``ablations``: post-norm, no RMSNorm (at the best rate and a quarter of it), no position encoding (NoPE), SiLU
  feed-forward with matched parameters, against the baseline, 2 seeds each.
* ``speedrun``: Muon + ReLU² + QK-norm + zero-initialised projections + trapezoidal schedule, over a grid of Muon
  and AdamW (embedding, head, gains) rates, given fractions of the baseline's time: the time to reach the
  baseline's loss, and one trick removed at a time. ``speedrun_parts`` picks which of the three sets run, so a
  search and its confirmation can run as separate calls and be merged.
* ``main_experiment``: one configuration for a long budget, then samples.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cs336_basics.experiment_config import SPEEDRUN_COOLDOWN, SPEEDRUN_TRICKS, ExperimentConfig
from cs336_basics.model import matched_d_ff
from cs336_basics.model_config import ModelConfig
from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.figures import pyplot, save_figure
from cs336_basics.toolkit.metrics import read_metrics
from cs336_basics.toolkit.tables import markdown_table
from cs336_basics.train import train
from cs336_basics.train_config import TrainConfig


@dataclass(frozen=True)
class RunSpec:
    """One training run: a name, a label within its group (curves of a group share a colour), its config, and
    the run it is compared with (a speedrun ablation's full speedrun)."""

    name: str
    group: str
    train: TrainConfig
    keep_checkpoint: bool = False
    reference: str | None = None


def base_train_config(cfg: ExperimentConfig, name: str, seed: int, **overrides: Any) -> TrainConfig:
    """The baseline run (handout model, AdamW, cosine to a tenth) for ``cfg.seconds``, with ``overrides``."""
    corpus = Path(cfg.corpus)
    settings: dict[str, Any] = dict(
        train_data=str(corpus / "train.bin"),
        valid_data=str(corpus / "valid.bin"),
        out_dir=str(Path(cfg.out_dir) / cfg.experiment / "runs" / name),
        model=cfg.model,
        batch_size=cfg.batch_size,
        max_iters=10**9,
        max_lr=cfg.lr,
        min_lr=cfg.lr / 10,
        warmup_iters=100,
        eval_batches=cfg.eval_batches,
        eval_batch_size=cfg.eval_batch_size,
        final_eval_batches=cfg.final_eval_batches,
        evaluations=cfg.evaluations,
        checkpoint_interval=10**9,
        device=cfg.device,
        compile=cfg.compile,
        seed=seed,
        time_budget=cfg.seconds,
        progress=cfg.progress,
        run_name=name,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def _seeded(
    cfg: ExperimentConfig, name: str, group: str, reference: str | None = None, **overrides: Any
) -> list[RunSpec]:
    """One run per seed; ``reference`` (a run name without its seed) gets the same seed appended."""
    return [
        RunSpec(
            f"{name}_seed{seed}",
            group,
            base_train_config(cfg, f"{name}_seed{seed}", seed, **overrides),
            reference=f"{reference}_seed{seed}" if reference else None,
        )
        for seed in cfg.seeds
    ]


def learning_rate_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    runs = []
    for lr in cfg.learning_rates:
        runs += _seeded(cfg, f"lr{lr:g}", f"lr {lr:g}", max_lr=lr, min_lr=lr / 10)
    return runs


def batch_size_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    runs = []
    for batch in cfg.batch_sizes:
        lr = cfg.lr * math.sqrt(batch / cfg.batch_size)
        # Warm-up over about the same tokens as the baseline's 100 steps, within [25, 1000] steps.
        warmup = max(25, min(1000, round(100 * cfg.batch_size / batch)))
        overrides = dict(batch_size=batch, max_lr=lr, min_lr=lr / 10, warmup_iters=warmup)
        runs += _seeded(cfg, f"batch{batch}", f"batch {batch} (lr {lr:.2g})", **overrides)
    return runs


def ablation_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    def model(**changes: Any) -> ModelConfig:
        return dataclasses.replace(cfg.model, **changes)

    quarter = dict(max_lr=cfg.lr / 4, min_lr=cfg.lr / 40)
    silu_d_ff = matched_d_ff(cfg.model.d_ff, "silu")
    return (
        _seeded(cfg, "baseline", "baseline (pre-norm, RoPE, SwiGLU)")
        + _seeded(cfg, "post_norm", "post-norm", model=model(norm="post"))
        + _seeded(cfg, "no_norm", "no RMSNorm", model=model(norm="none"))
        + _seeded(cfg, "no_norm_lr_quarter", "no RMSNorm, lr/4", model=model(norm="none"), **quarter)
        + _seeded(cfg, "no_pos_emb", "NoPE (no RoPE)", model=model(position="none"))
        + _seeded(cfg, "silu_ffn", f"SiLU FFN (d_ff {silu_d_ff})", model=model(ffn="silu", d_ff=silu_d_ff))
    )


def speedrun_layers(model: ModelConfig) -> dict[str, Any]:
    """The speedrun's changes to a model's layers: ReLU² at SwiGLU's parameter count, QK-norm, zero-initialised
    output projections (``ModelConfig`` fields, for ``dataclasses.replace``)."""
    return dict(ffn="relu2", d_ff=matched_d_ff(model.d_ff, "relu2"), qk_norm=True, zero_init_output=True)


def speedrun_settings(
    cfg: ExperimentConfig,
    muon_lr: float,
    adam_lr: float,
    without: str | None = None,
    cooldown: float = SPEEDRUN_COOLDOWN,
) -> dict[str, Any]:
    """The speedrun's overrides of the baseline, optionally with one of :data:`SPEEDRUN_TRICKS` left out.

    ``adam_lr`` is the peak rate of the AdamW part (embedding, head, gains); without Muon every weight gets the
    baseline's AdamW rate ``cfg.lr``, as a higher embedding rate is only tested with Muon. ``cooldown`` is the share
    of the run in the trapezoid's linear cool-down."""
    model = speedrun_layers(cfg.model) | ({} if cfg.speedrun_qk_norm else {"qk_norm": False})
    settings: dict[str, Any] = dict(
        optimizer="muon", muon_lr=muon_lr, max_lr=adam_lr, schedule="trapezoidal", cooldown_fraction=cooldown,
        min_lr=0.0, warmup_iters=30,
    )  # fmt: skip
    if without == "muon":
        settings.update(optimizer="adamw", max_lr=cfg.lr)
    elif without == "relu2":
        model.update(ffn=cfg.model.ffn, d_ff=cfg.model.d_ff)
    elif without in ("qk_norm", "zero_init_output"):
        model[without] = False
    elif without == "trapezoidal":
        settings.update(schedule="cosine", min_lr=adam_lr / 10, warmup_iters=100)
    elif without is not None:
        raise ValueError(f"unknown speedrun trick {without!r}; one of {SPEEDRUN_TRICKS}")
    settings["model"] = dataclasses.replace(cfg.model, **model)
    return settings


def speedrun_name(
    muon_lr: float, adam_lr: float, fraction: float, cooldown: float = SPEEDRUN_COOLDOWN, qk_norm: bool = True
) -> str:
    """Runs differing only in budget share the name up to the last ``_<fraction>x``."""
    shape = ("" if cooldown == SPEEDRUN_COOLDOWN else f"_cd{cooldown:g}") + ("" if qk_norm else "_noqk")
    return f"speedrun_muonlr{muon_lr:g}_adamlr{adam_lr:g}{shape}_{fraction:g}x"


def speedrun_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """The baseline at the full budget sets the target; the speedrun gets fractions of it for every Muon rate,
    AdamW rate and cool-down share; then, at the middle fraction and the first of each, each trick of
    ``speedrun_ablations`` is removed in turn."""
    runs = _seeded(cfg, "baseline", "baseline") if "baseline" in cfg.speedrun_parts else []
    fractions = sorted(cfg.speedrun_fractions)
    middle = fractions[len(fractions) // 2]
    if "budgets" in cfg.speedrun_parts:
        for muon_lr, adam_lr, cooldown in itertools.product(cfg.muon_lrs, cfg.adam_lrs, cfg.speedrun_cooldowns):
            shape = ("" if cooldown == SPEEDRUN_COOLDOWN else f", cool-down {cooldown:g}") + (
                "" if cfg.speedrun_qk_norm else ", no QK-norm"
            )
            for fraction in fractions:
                settings = speedrun_settings(cfg, muon_lr, adam_lr, cooldown=cooldown)
                group = f"speedrun, Muon {muon_lr:g}, AdamW {adam_lr:g}{shape}, {fraction:g}x time"
                name = speedrun_name(muon_lr, adam_lr, fraction, cooldown, cfg.speedrun_qk_norm)
                runs += _seeded(cfg, name, group, time_budget=fraction * cfg.seconds, **settings)
    if "ablations" in cfg.speedrun_parts:
        muon_lr, adam_lr, cooldown = cfg.muon_lrs[0], cfg.adam_lrs[0], cfg.speedrun_cooldowns[0]
        full = speedrun_name(muon_lr, adam_lr, middle, cooldown, cfg.speedrun_qk_norm)
        for trick in cfg.ablated_tricks:
            settings = speedrun_settings(cfg, muon_lr, adam_lr, without=trick, cooldown=cooldown)
            group = f"speedrun without {trick}, {middle:g}x time"
            runs += _seeded(
                cfg, f"speedrun_without_{trick}", group, reference=full, time_budget=middle * cfg.seconds, **settings
            )
    return runs


def main_experiment_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """One run of the chosen configuration (the speedrun with the first Muon and AdamW rates, or the baseline),
    seed ``seeds[0]``, keeping its checkpoint for the samples."""
    settings = {}
    if cfg.main_config == "speedrun":
        settings = speedrun_settings(cfg, cfg.muon_lrs[0], cfg.adam_lrs[0], cooldown=cfg.speedrun_cooldowns[0])
    name = f"main_{cfg.main_config}"
    train_cfg = base_train_config(cfg, name, cfg.seeds[0], **settings)
    return [RunSpec(name, f"{cfg.main_config} configuration", train_cfg, keep_checkpoint=True)]


RUN_BUILDERS: dict[str, Callable[[ExperimentConfig], list[RunSpec]]] = {
    "learning_rate": learning_rate_runs,
    "batch_size": batch_size_runs,
    "ablations": ablation_runs,
    "speedrun": speedrun_runs,
    "main_experiment": main_experiment_runs,
}


def best_learning_rate(results_json: str | Path) -> float:
    """The peak rate of the run with the lowest final validation loss in a ``learning_rate`` results file."""
    runs = [r for r in json.loads(Path(results_json).read_text())["runs"] if r["status"] == "ok"]
    if not runs:
        raise ValueError(f"{results_json} has no finished run to take a learning rate from")
    return min(runs, key=lambda r: r["val_loss"])["max_lr"]


def peak_loss(metrics: list[dict[str, Any]]) -> float:
    """The highest training or validation loss logged after the first validation (the start is always high)."""
    first_eval = next((m["step"] for m in metrics if "val_loss" in m), 0)
    later = [m.get(k) for m in metrics if m["step"] > first_eval for k in ("train_loss", "val_loss") if k in m]
    return max((x for x in later if math.isfinite(x)), default=math.nan)


def run_status(stopped_on_nan: bool, val_loss: float | None, peak: float, vocab_size: int) -> str:
    """``diverged`` when the loss became NaN or, after the start, rose clearly above chance (1 nat over
    ``ln vocab``): the run blew up, even if a decaying learning rate lets it recover by the end. Else ``ok``."""
    blown_up = math.log(vocab_size) + 1.0
    if stopped_on_nan or val_loss is None or not math.isfinite(val_loss) or val_loss > blown_up or peak > blown_up:
        return "diverged"
    return "ok"


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one run and summarise it; divergence (non-finite or chance-level loss) and running out of memory
    are outcomes, not crashes."""
    cfg = spec.train
    record: dict[str, Any] = {
        "name": spec.name,
        "group": spec.group,
        "reference": spec.reference,
        "seed": cfg.seed,
        "max_lr": cfg.max_lr,
        "batch_size": cfg.batch_size,
        "optimizer": cfg.optimizer,
        "muon_lr": cfg.muon_lr if cfg.optimizer == "muon" else None,
        "schedule": cfg.schedule,
        "cooldown_fraction": cfg.cooldown_fraction if cfg.schedule == "trapezoidal" else None,
        "time_budget": cfg.time_budget,
        "model": dataclasses.asdict(cfg.model),
    }
    torch._dynamo.reset()
    try:
        summary = train(cfg)
    except torch.OutOfMemoryError:
        return record | {"status": "out_of_memory", "val_loss": None}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    val_loss = summary["val_loss"]
    peak = peak_loss(read_metrics(summary["metrics"]))
    record |= {
        "status": run_status(summary["diverged"], val_loss, peak, cfg.model.vocab_size),
        "val_loss": val_loss if val_loss is not None and math.isfinite(val_loss) else None,
        "peak_loss": peak,
        "train_loss": summary["train_loss"],
        "iterations": summary["iterations"],
        "tokens": summary["iterations"] * cfg.batch_size * cfg.model.context_length,
        "train_seconds": summary["train_seconds"],
        "step_ms": 1e3 * summary["step_seconds"],
        "tokens_per_second": summary["iterations"]
        * cfg.batch_size
        * cfg.model.context_length
        / max(summary["train_seconds"], 1e-9),
        "metrics": str(Path(summary["metrics"]).relative_to(Path(cfg.out_dir).parent.parent)),
    }
    if not spec.keep_checkpoint:
        Path(summary["checkpoint"]).unlink(missing_ok=True)
    return record


def memory_probe(cfg: ExperimentConfig, batches: list[int]) -> list[dict[str, Any]]:
    """One eager training step at each batch size: its peak memory, or that it does not fit."""
    from cs336_basics.data import get_batch, load_tokens
    from cs336_basics.model import TransformerLM
    from cs336_basics.nn_utils import cross_entropy
    from cs336_basics.toolkit.device import autocast_context, select_device

    device = select_device(cfg.device)
    if device.type != "cuda":
        return []
    tokens = load_tokens(Path(cfg.corpus) / "train.bin")
    results = []
    for batch in batches:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model = TransformerLM(cfg.model, device=device)
        try:
            x, y = get_batch(tokens, batch, cfg.model.context_length, device)
            with autocast_context(device):
                cross_entropy(model(x), y).backward()
            torch.cuda.synchronize()
            results.append({"batch_size": batch, "fits": True, "peak_gib": torch.cuda.max_memory_allocated() / 2**30})
        except torch.OutOfMemoryError:
            results.append({"batch_size": batch, "fits": False, "peak_gib": None})
        finally:
            del model
    return results


def machine() -> dict[str, str]:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(), "host": platform.node()}


def table_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One markdown row per run."""
    headers = ["run", "seed", "lr", "batch", "steps", "tokens (M)", "train s", "tokens/s", "final val loss", "status"]
    rows = []
    for r in runs:
        lr = f"{r['max_lr']:.3g}" + (f" (Muon {r['muon_lr']:g})" if r.get("muon_lr") else "")
        if r["status"] == "out_of_memory":
            rows.append([r["group"], r["seed"], lr, r["batch_size"], "-", "-", "-", "-", "-", "out of memory"])
            continue
        loss = f"{r['val_loss']:.4f}" if r.get("val_loss") is not None else "-"
        rows.append([
            r["group"], r["seed"], lr, r["batch_size"], f"{r['iterations']:,}", f"{r['tokens'] / 1e6:.1f}",
            f"{r['train_seconds']:.1f}", f"{r['tokens_per_second'] / 1e6:.2f} M", loss, r["status"],
        ])  # fmt: skip
    return markdown_table(headers, rows).split("\n")


def plot_curves(out: Path, runs: list[dict[str, Any]], title: str) -> None:
    """Validation loss against steps and against training seconds; one colour per group, one style per seed."""
    plt = pyplot()
    groups = list(dict.fromkeys(r["group"] for r in runs if r["status"] != "out_of_memory"))
    colours = {g: plt.cm.tab20(i % 20) if len(groups) > 10 else plt.cm.tab10(i) for i, g in enumerate(groups)}
    finite = [r["val_loss"] for r in runs if r.get("val_loss") is not None]
    for x_key, x_label, name in (
        ("step", "step", "val_loss_vs_steps.png"),
        ("train_seconds", "training time (s)", "val_loss_vs_time.png"),
    ):
        fig, ax = plt.subplots(figsize=(8, 5))
        for r in runs:
            if r["status"] == "out_of_memory":
                continue
            points = [(m[x_key], m["val_loss"]) for m in read_metrics(out / r["metrics"]) if "val_loss" in m]
            points = [(x, y) for x, y in points if math.isfinite(y)]
            if points:
                xs, ys = zip(*points)
                label = r["group"] if r["seed"] == runs[0]["seed"] else None
                ax.plot(xs, ys, "o-" if r["seed"] == runs[0]["seed"] else "s--", color=colours[r["group"]],
                        label=label, markersize=3, linewidth=1.2)  # fmt: skip
        if finite:
            chance = math.log(runs[0]["model"]["vocab_size"])
            ax.set_ylim(min(finite) - 0.1, chance + 0.5)  # above chance only blown-up runs: clipped
        ax.set_xscale("log" if x_key == "step" else "linear")
        ax.set_xlabel(x_label)
        ax.set_ylabel("validation loss (nats/token)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / name)


def plot_time_to_target(out: Path, runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Final loss against measured time (x the baseline's) per speedrun configuration: seed means joined, seeds as
    dots, the ablations as crosses, the baseline's loss as the target line and the 0.6x goal and 0.5x stretch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    target, baseline_seconds = summary["target_loss"], summary["baseline_seconds"]
    for i, crossing in enumerate(summary["time_to_target"]):
        colour = plt.cm.tab10(i % 10)
        seeds = [b for b in summary["budgets"] if b["config"] == crossing["config"]]
        ax.plot([b["measured_fraction"] for b in seeds], [b["val_loss"] for b in seeds], ".", color=colour, alpha=0.4)
        time = crossing["time_to_target"]
        label = crossing["config"] + (f": {time:.3f}x" if time is not None else "")
        ax.plot(crossing["measured_fractions"], crossing["mean_val_losses"], "o-", color=colour, label=label)
        if time is not None:
            ax.plot([time], [target], "*", color=colour, markersize=12)
    ablations = [r for r in runs if r["status"] == "ok" and r["name"].startswith("speedrun_without_")]
    for i, trick in enumerate(dict.fromkeys(r["group"] for r in ablations)):
        group = [r for r in ablations if r["group"] == trick]
        ax.plot([r["train_seconds"] / baseline_seconds for r in group], [r["val_loss"] for r in group], "x",
                color=plt.cm.Dark2(i % 8), markersize=8, label=trick)  # fmt: skip
    baseline = [r for r in runs if r["status"] == "ok" and r["name"].startswith("baseline")]
    ax.plot([r["train_seconds"] / baseline_seconds for r in baseline], [r["val_loss"] for r in baseline], "s",
            color="0.3", label="baseline seeds")  # fmt: skip
    ax.axhline(target, color="0.3", linestyle="--", linewidth=1, label=f"target {target:.4f} (baseline mean)")
    for goal, name in ((0.6, "goal"), (0.5, "stretch")):
        ax.axvline(goal, color="0.6", linestyle=":", linewidth=1)
        ax.annotate(f"{goal:g}x {name}", (goal, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -10),
                    textcoords="offset points", fontsize=7, color="0.4")  # fmt: skip
    ax.set_xlabel("measured training time (x the baseline's)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("speedrun: time to the baseline's loss (stars: the seed means' crossings)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "time_to_target.png")


def plot_final_loss(out: Path, runs: list[dict[str, Any]], x_key: str, x_label: str, name: str) -> None:
    """Final validation loss against one swept setting (log axis); diverged runs are marked at the top."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    ok = [r for r in runs if r["status"] == "ok"]
    bad = [r for r in runs if r["status"] == "diverged"]
    ax.plot([r[x_key] for r in ok], [r["val_loss"] for r in ok], "o", color="C0", label="finished")
    if bad and ok:
        top = max(r["val_loss"] for r in ok) + 0.2
        ax.plot([r[x_key] for r in bad], [top] * len(bad), "x", color="C3", markersize=9, label="diverged")
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("final validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / name)


def write_samples(cfg: ExperimentConfig, out: Path, checkpoint: Path) -> list[dict[str, str]]:
    """Nucleus samples from the main run's checkpoint, written to ``samples.md``."""
    from cs336_basics.checkpoint import read_checkpoint
    from cs336_basics.english_corpus import END_OF_TEXT
    from cs336_basics.generate import generate_batch
    from cs336_basics.model import TransformerLM
    from cs336_basics.tokenizer import Tokenizer
    from cs336_basics.toolkit.device import select_device

    corpus = Path(cfg.corpus)
    tokenizer = Tokenizer.from_files(corpus / "vocab.json", corpus / "merges.txt", special_tokens=[END_OF_TEXT])
    device = select_device(cfg.device)
    payload = read_checkpoint(checkpoint)
    model_cfg = ModelConfig(**payload["model_config"])
    model = TransformerLM(model_cfg, device=device)
    model.load_state_dict(payload["model"])
    model.eval()
    prompts = ["Once upon a time", "The function returns", "In the beginning"][: cfg.samples]
    generator = torch.Generator(device=device).manual_seed(0)
    ids = generate_batch(
        model,
        [tokenizer.encode(p) for p in prompts],
        cfg.sample_tokens,
        cfg.temperature,
        cfg.top_p,
        tokenizer.special_token_ids[END_OF_TEXT],
        device,
        generator,
    )
    samples = [{"prompt": p, "continuation": tokenizer.decode(i)} for p, i in zip(prompts, ids)]
    text = [f"# Samples (temperature {cfg.temperature}, top-p {cfg.top_p}, up to {cfg.sample_tokens} tokens)\n"]
    for s in samples:
        text.append(f"## Prompt: {s['prompt']!r}\n\n```text\n{s['prompt']}{s['continuation']}\n```\n")
    write_text_atomic(out / "samples.md", "\n".join(text))
    return samples


def speedrun_summary(runs: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The target (mean final loss of the baseline runs), whether each speedrun budget reached it, and the change
    in final loss when each trick is removed (against its reference: the full speedrun at the same budget, rates
    and seed)."""
    finished = [r for r in runs if r["status"] == "ok"]
    by_name = {r["name"]: r for r in finished}
    baseline = [r for r in finished if r["name"].startswith("baseline")]
    target = sum(r["val_loss"] for r in baseline) / len(baseline) if baseline else math.nan
    baseline_seconds = sum(r["train_seconds"] for r in baseline) / len(baseline) if baseline else math.nan
    budgets = [
        {"name": r["name"], "config": r["name"].rsplit("_", 2)[0], "seed": r["seed"],
         "fraction": r["time_budget"] / seconds, "train_seconds": r["train_seconds"],
         "measured_fraction": r["train_seconds"] / baseline_seconds, "val_loss": r["val_loss"],
         "reached": r["val_loss"] <= target}
        for r in finished if r["name"].startswith("speedrun_muonlr")
    ]  # fmt: skip
    tricks = []
    for r in finished:
        full = by_name.get(r.get("reference") or "")
        if r["name"].startswith("speedrun_without_") and full is not None:
            trick = r["name"].removeprefix("speedrun_without_").rsplit("_seed", 1)[0]
            tricks.append(
                {
                    "trick": trick,
                    "seed": r["seed"],
                    "val_loss": r["val_loss"],
                    "change": r["val_loss"] - full["val_loss"],
                }
            )
    return {
        "target_loss": target,
        "baseline_seconds": baseline_seconds,
        "budgets": budgets,
        "time_to_target": time_to_target(budgets, target),
        "tricks": tricks,
    }


def time_to_target(budgets: list[dict[str, Any]], target: float) -> list[dict[str, Any]]:
    """Per speedrun configuration, when its seed-mean final loss first reaches ``target``, as a fraction of the
    baseline's measured time: linear between the two measured budgets around the crossing (each budget's
    loss and time averaged over its seeds). ``None`` when no budget reaches it or the smallest already does, since
    then the crossing lies outside what was measured."""
    by_config: dict[str, dict[float, list[dict[str, Any]]]] = {}
    for b in budgets:
        by_config.setdefault(b["config"], {}).setdefault(b["fraction"], []).append(b)
    rows = []
    for config, by_fraction in by_config.items():
        points = [
            (sum(b["measured_fraction"] for b in runs) / len(runs), sum(b["val_loss"] for b in runs) / len(runs),
             sorted(b["seed"] for b in runs))
            for _, runs in sorted(by_fraction.items())
        ]  # fmt: skip
        crossing = None
        for (time_a, loss_a, _), (time_b, loss_b, _) in itertools.pairwise(points):
            if loss_a > target >= loss_b:
                crossing = time_a + (time_b - time_a) * (loss_a - target) / (loss_a - loss_b)
                break
        rows.append(
            {
                "config": config,
                "measured_fractions": [t for t, _, _ in points],
                "mean_val_losses": [loss for _, loss, _ in points],
                "seeds": [seeds for _, _, seeds in points],
                "time_to_target": crossing,
            }
        )
    return rows


def time_to_target_row(crossing: dict[str, Any], target: float) -> list[str]:
    """One configuration's line of the time-to-target table."""
    points = zip(crossing["measured_fractions"], crossing["mean_val_losses"], crossing["seeds"])
    losses = " / ".join(f"{time:.2f}x: {loss:.4f} (seeds {', '.join(map(str, seeds))})" for time, loss, seeds in points)
    times, time = crossing["measured_fractions"], crossing["time_to_target"]
    if time is not None:
        return [crossing["config"], losses, f"{time:.3f}x"]
    reached_first = crossing["mean_val_losses"][0] <= target
    return [crossing["config"], losses, f"≤ {times[0]:.2f}x" if reached_first else f"> {times[-1]:.2f}x"]


def write_outputs(
    cfg: ExperimentConfig,
    out: Path,
    runs: list[dict[str, Any]],
    plots: bool = True,
    machine_info: dict[str, str] | None = None,
    corpus_sha256: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``results.json`` (with ``extra`` entries such as samples) and ``table.md`` (after every run, so a cut-off
    call keeps what finished), and the plots."""
    corpus_json = Path(cfg.corpus) / "corpus.json"
    if corpus_sha256 is None and corpus_json.exists():
        corpus_sha256 = json.loads(corpus_json.read_text())["sha256"]
    results: dict[str, Any] = {
        "experiment": cfg.experiment,
        "config": dataclasses.asdict(cfg),
        "machine": machine_info or machine(),
        "corpus_sha256": corpus_sha256,
        "runs": runs,
    } | (extra or {})
    lines = table_lines(runs)
    if cfg.experiment == "speedrun":
        results["speedrun"] = speedrun_summary(runs, cfg.seconds)
        summary = results["speedrun"]
        budgets = [
            [b["name"], f"{b['fraction']:g}", f"{b['train_seconds']:.1f} ({b['measured_fraction']:.2f}x)",
             f"{b['val_loss']:.4f}", b["reached"]]
            for b in summary["budgets"]
        ]  # fmt: skip
        tricks = [[t["trick"], t["seed"], f"{t['val_loss']:.4f}", f"{t['change']:+.4f}"] for t in summary["tricks"]]
        crossings = [time_to_target_row(c, summary["target_loss"]) for c in summary["time_to_target"]]
        lines += [
            f"\nTarget: the baseline's final validation loss {summary['target_loss']:.4f} (mean over seeds) in "
            f"{summary['baseline_seconds']:.1f} s of training (budget {cfg.seconds:g} s).\n",
            markdown_table(
                ["speedrun run", "budget (x baseline)", "measured s (x baseline)", "final val loss", "reached"], budgets
            ),
            "\nTime to the target: each budget's final loss averaged over its seeds, the crossing interpolated "
            "linearly between the two budgets around it; a bound where no pair of budgets brackets the target.\n",
            markdown_table(
                ["configuration", "mean final val loss per budget", "time to target (x baseline)"], crossings
            ),
            "",
            markdown_table(["trick removed", "seed", "final val loss", "change vs full speedrun"], tricks),
        ]
    write_text_atomic(out / "table.md", "\n".join(lines) + "\n")
    if plots and runs:
        plot_curves(out, runs, f"{cfg.experiment}: {cfg.seconds:g} s per run ({results['machine']['gpu']})")
        if cfg.experiment == "learning_rate":
            plot_final_loss(out, runs, "max_lr", "peak learning rate", "final_loss_vs_lr.png")
        elif cfg.experiment == "batch_size":
            plot_final_loss(out, runs, "batch_size", "batch size", "final_loss_vs_batch.png")
        elif cfg.experiment == "speedrun" and results["speedrun"]["budgets"]:
            plot_time_to_target(out, runs, results["speedrun"])
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


def run_experiment(cfg: ExperimentConfig) -> dict[str, Any]:
    """Run every run of ``cfg.experiment`` in turn and write its results; returns what ``results.json`` holds.
    With ``merge_from``, combine earlier result folders instead (:func:`merge_results`)."""
    if cfg.merge_from:
        return merge_results(cfg, cfg.merge_from)
    if cfg.lr_from:
        cfg = dataclasses.replace(cfg, lr=best_learning_rate(cfg.lr_from))
    out = Path(cfg.out_dir) / cfg.experiment
    if (out / "runs").exists():
        shutil.rmtree(out / "runs")
    specs = RUN_BUILDERS[cfg.experiment](cfg)
    runs: list[dict[str, Any]] = []
    for index, spec in enumerate(specs, 1):
        print(f"[{index}/{len(specs)}] {spec.name}", flush=True)
        runs.append(run_one(spec))
        loss = runs[-1]["val_loss"]
        print(f"    {runs[-1]['status']}: val loss {loss if loss is None else round(loss, 4)}", flush=True)
        write_outputs(cfg, out, runs, plots=False)
    extra: dict[str, Any] = {}
    if cfg.experiment == "batch_size":
        extra["memory_probe"] = memory_probe(cfg, cfg.memory_probe_batches)
    elif cfg.experiment == "main_experiment":
        checkpoint = Path(specs[0].train.out_dir) / "checkpoint.pt"
        extra["samples"] = write_samples(cfg, out, checkpoint)
        checkpoint.unlink()
    return write_outputs(cfg, out, runs, extra=extra)


def merge_results(cfg: ExperimentConfig, sources: list[str | Path]) -> dict[str, Any]:
    """Combine the runs of one experiment made in several calls (each GPU call is time-limited) into
    ``out_dir/<experiment>/``: their metrics are copied, statuses recomputed, table and plots redrawn.
    The machine and corpus are taken from the first source; all sources must share the corpus and the run length
    (``seconds``), which the merge takes from them: the speedrun's budgets are fractions of it."""
    out = Path(cfg.out_dir) / cfg.experiment
    runs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    first: dict[str, Any] | None = None
    for source in map(Path, sources):
        results = json.loads((source / "results.json").read_text())
        if results["experiment"] != cfg.experiment:
            raise ValueError(f"{source} holds a {results['experiment']!r} experiment, not {cfg.experiment!r}")
        first = first or results
        if results["corpus_sha256"] != first["corpus_sha256"]:
            raise ValueError(f"{source} was run on another corpus than {sources[0]}")
        if results["config"]["seconds"] != first["config"]["seconds"]:
            raise ValueError(
                f"{source} ran {results['config']['seconds']:g} s runs, {sources[0]} {first['config']['seconds']:g} s"
            )
        extra |= {k: v for k, v in results.items() if k in ("memory_probe", "samples")}
        for run in results["runs"]:
            if run["status"] != "out_of_memory":
                destination = out / run["metrics"]
                destination.parent.mkdir(parents=True, exist_ok=True)
                if (source / run["metrics"]).resolve() != destination.resolve():
                    shutil.copyfile(source / run["metrics"], destination)
                metrics = read_metrics(destination)
                run["peak_loss"] = peak_loss(metrics)
                stopped = not math.isfinite(run["train_loss"]) if run.get("train_loss") is not None else False
                run["status"] = run_status(stopped, run["val_loss"], run["peak_loss"], run["model"]["vocab_size"])
            runs.append(run)
    if first is None:
        raise ValueError("merge_results needs at least one results folder")
    cfg = dataclasses.replace(cfg, seconds=first["config"]["seconds"])
    return write_outputs(cfg, out, runs, True, first["machine"], first["corpus_sha256"], extra)
