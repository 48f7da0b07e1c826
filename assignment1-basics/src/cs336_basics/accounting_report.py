"""Every number of the handout's transformer_accounting and adamwAccounting problems, from ``accounting``, for
GPT-2 small / medium / large / XL (and XL at a 16,384-token context), as JSON and markdown tables: what
``scripts/accounting_report.py`` writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cs336_basics.accounting import (
    ADAMW_FLOPS_PER_PARAMETER,
    activation_elements,
    adamw_memory_affine,
    adamw_memory_bytes,
    adamw_update_flops,
    count_parameters,
    forward_flops_breakdown,
    forward_matmuls,
    max_batch_size,
    training_days,
    training_step_flops,
)
from cs336_basics.model_config import ModelConfig
from cs336_basics.model_sizes import model_config
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

GPT2_SIZES = ("small", "medium", "large", "xl")  # the handout's GPT-2 shapes (d_ff = 4 · d_model) in model_sizes
GIB = 2**30


@dataclass
class AccountingReportConfig:
    """The handout's settings for the accounting problems."""

    out_dir: str = field(
        default="assignment1-basics/results/accounting", metadata={"help": "accounting.json, table.md"}
    )
    vocab_size: int = 50_257
    context_length: int = 1_024
    long_context: int = field(default=16_384, metadata={"help": "context of the last GPT-2 XL row"})
    memory_bytes: float = field(default=80e9, metadata={"help": "accelerator memory for the largest batch (80 GB)"})
    peak_flops_per_second: float = field(default=19.5e12, metadata={"help": "A100 float32 peak"})
    mfu: float = 0.5
    steps: int = 400_000
    batch_size: int = 1_024


def model_row(model: ModelConfig) -> dict[str, Any]:
    """Parameters, float32 size and the forward FLOPs of one context-length sequence, by component."""
    breakdown = forward_flops_breakdown(model, model.context_length)
    total = sum(breakdown.values())
    params = count_parameters(model)
    return {
        "config": asdict(model),
        "parameters": params,
        "parameters_without_embeddings": count_parameters(model, include_embeddings=False),
        "float32_bytes": 4 * params,
        "forward_flops": total,
        "forward_flops_breakdown": breakdown,
        "forward_flops_share": {part: flops / total for part, flops in breakdown.items()},
    }


def adamw_row(model: ModelConfig, cfg: AccountingReportConfig) -> dict[str, Any]:
    """Memory of training with AdamW as a · batch + b, the largest batch that fits, step FLOPs and training days."""
    a, b = adamw_memory_affine(model)
    return {
        "config": asdict(model),
        "memory_bytes_batch_1": adamw_memory_bytes(model, 1),
        "activation_values_batch_1": activation_elements(model, 1),
        "bytes_per_sequence_a": a,
        "fixed_bytes_b": b,
        "max_batch_size": max_batch_size(model, cfg.memory_bytes),
        "max_batch_size_80_gib": max_batch_size(model, 80 * GIB),
        "adamw_update_flops": adamw_update_flops(model),
        "training_step_flops": training_step_flops(model, cfg.batch_size),
        "training_days": training_days(model, cfg.steps, cfg.batch_size, cfg.peak_flops_per_second, cfg.mfu),
    }


def build_report(cfg: AccountingReportConfig) -> dict[str, Any]:
    """The report's numbers: each model's row, GPT-2 XL's matrix multiplies and the AdamW training rows."""
    gpt2 = {"vocab_size": cfg.vocab_size, "context_length": cfg.context_length}
    models = {f"gpt2-{size}": model_config(size, **gpt2) for size in GPT2_SIZES}
    models["gpt2-xl-16k"] = model_config("xl", vocab_size=cfg.vocab_size, context_length=cfg.long_context)
    xl = models["gpt2-xl"]
    return {
        "settings": asdict(cfg),
        "models": {name: model_row(model) for name, model in models.items()},
        "gpt2_xl_matmuls": [{**asdict(m), "flops": m.flops} for m in forward_matmuls(xl, xl.context_length)],
        "adamw": {
            # The handout's list of activations has an ungated feed-forward (W1, SiLU, W2); our model is SwiGLU.
            "gpt2-xl (handout: W1-SiLU-W2)": adamw_row(model_config("xl", **gpt2, ffn="silu"), cfg),
            "gpt2-xl (our SwiGLU model)": adamw_row(xl, cfg),
        },
        "adamw_flops_per_parameter": ADAMW_FLOPS_PER_PARAMETER,
    }


def report_table(report: dict[str, Any]) -> str:
    """Markdown tables of the report."""
    models = report["models"]
    parts = list(next(iter(models.values()))["forward_flops_breakdown"])
    lines = [
        "# Transformer and AdamW accounting (computed by cs336_basics.accounting; no measurement involved)",
        "",
        "GPT-2 shapes with d_ff = 4 · d_model, SwiGLU feed-forward (3 matrices), untied LM head, vocab 50,257.",
        "",
        "## Parameters and forward FLOPs of one sequence (context length tokens)",
        "",
    ]
    rows = [
        [
            name,
            f"{row['config']['context_length']:,}",
            f"{row['parameters']:,}",
            f"{row['float32_bytes'] / 1e9:.2f} GB",
            f"{row['forward_flops'] / 1e12:.3f} T",
            *(f"{row['forward_flops_share'][p]:.1%}" for p in parts),
        ]
        for name, row in models.items()
    ]
    lines.append(markdown_table(["model", "context", "parameters", "float32", "forward FLOPs", *parts], rows))
    lines += ["", "## GPT-2 XL forward matrix multiplies (context 1,024)", ""]
    rows = [
        [m["description"], f"({m['m']}×{m['n']})·({m['n']}×{m['p']})", f"{m['count']:,}", f"{m['flops'] / 1e9:,.1f} G"]
        for m in report["gpt2_xl_matmuls"]
    ]
    lines.append(markdown_table(["matmul", "shape (m×n)·(n×p)", "times", "FLOPs"], rows))
    lines += ["", "## Training GPT-2 XL with AdamW (float32)", ""]
    headers = ["feed-forward", "params+grads+moments", "activations per sequence (a)", "max batch in 80 GB (80 GiB)"]
    headers += ["step FLOPs at batch 1,024", "AdamW update FLOPs", "days at 50% MFU of 19.5 TFLOP/s, 400K steps"]
    rows = [
        [
            name,
            f"{row['fixed_bytes_b'] / 1e9:.2f} GB",
            f"{row['bytes_per_sequence_a'] / 1e9:.2f} GB",
            f"{row['max_batch_size']} ({row['max_batch_size_80_gib']})",
            f"{row['training_step_flops']:.3e}",
            f"{row['adamw_update_flops']:.3e}",
            f"{row['training_days']:,.0f}",
        ]
        for name, row in report["adamw"].items()
    ]
    lines.append(markdown_table(headers, rows))
    return "\n".join(lines) + "\n"


def write_accounting_report(cfg: AccountingReportConfig) -> dict[str, Any]:
    """Write ``accounting.json`` and ``table.md`` to ``cfg.out_dir``, print the table, return the report."""
    report = build_report(cfg)
    out = Path(cfg.out_dir)
    write_json_atomic(out / "accounting.json", report)
    table = report_table(report)
    write_text_atomic(out / "table.md", table)
    print(table)
    return report
