"""What each filter did on the sample crawl, against the pages' true labels, with examples to read.

Needs a pipeline run with ``log_decisions`` on the crawl's WARC shards. Writes ``<out_dir>/stats.{md,json,png}`` (the
pipeline's counts), ``<out_dir>/by_kind.md`` (each step's verdicts per kind of page: what it should have dropped and
what it did), ``<out_dir>/samples.md`` (per step, random kept and dropped pages with an excerpt; the dedup stages'
drops next to the page they duplicate; PII replacements in context) and ``<out_dir>/random_pages.md`` (every
classifier's verdict on 25 random pages, for the handout's look-at-20-examples questions).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.gopher import gopher_rejection_reason
from cs336_data.harmful import classify_nsfw, classify_toxic_speech
from cs336_data.language_id import identify_language
from cs336_data.pii import mask_pii
from cs336_data.quality import QualityClassifier
from cs336_data.warc_io import iter_warc_responses


@dataclass(frozen=True)
class InspectFiltersConfig:
    """What each filter did on the sample crawl, against the pages' true labels, with examples to read."""

    crawl: Path = field(default=Path("assignment4-data/runs/crawl"), metadata={"help": "the sample crawl"})
    pipeline: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw/pipeline_filtered"),
        metadata={"help": "output folder of a pipeline run with --log_decisions on the crawl's WARC shards"},
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/inspect_filters"), metadata={"help": "folder for the reports"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the sampled pages"})


EXCERPT = 500


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def excerpt(text: str, length: int = EXCERPT) -> str:
    """The start of a page on one line, with its PII masked (these files are committed)."""
    flat = re.sub(r"\s+", " ", mask_pii(text)[0]).strip()
    return flat[:length] + (" …" if len(flat) > length else "")


def load_crawl(crawl: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Labels and extracted text by record id."""
    labels, texts = {}, {}
    for shard in sorted(crawl.glob("CC-SAMPLE-*.warc.gz")):
        for label in read_jsonl(crawl / "labels" / shard.name.replace(".warc.gz", ".jsonl")):
            labels[label["record_id"]] = label
        for page in iter_warc_responses(shard):
            texts[page.record_id] = extract_text_from_html_bytes(page.body) or ""
    return labels, texts


def kind_of(label: dict) -> str:
    return label["kind"] + (f" ({label['copy']} copy)" if "copy" in label else "")


def by_kind_table(decisions: list[dict], labels: dict[str, dict]) -> str:
    table: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for d in decisions:
        table[d["step"]][kind_of(labels[d["id"]])][d["decision"]] += 1
    out = []
    for step, kinds in table.items():
        rows = []
        for kind, counts in sorted(kinds.items()):
            kept = counts["kept"] + counts["modified"]
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(counts.items()) if r not in ("kept", "modified"))
            rows.append([kind, sum(counts.values()), kept, reasons])
        out += [f"### {step}", "", markdown_table(["page kind", "in", "kept", "dropped (reasons)"], rows, "lrrl"), ""]
    return "\n".join(out)


def samples(
    decisions: list[dict], labels: dict, texts: dict, pipeline: Path, rng: random.Random, per_reason: int = 2
) -> str:
    out = ["# Kept and dropped pages, per filter (random, seeded)", ""]
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for d in decisions:
        grouped[d["step"]][d["decision"]].append(d["id"])
    for step, verdicts in grouped.items():
        out += [f"## {step}", ""]
        for verdict, ids in sorted(verdicts.items()):
            for record_id in rng.sample(ids, min(per_reason, len(ids))):
                label = labels[record_id]
                out.append(f"- **{verdict}** ({kind_of(label)}, {label['url']}): {excerpt(texts[record_id])}")
        out.append("")
    out += dedup_samples(pipeline, labels, texts, rng)
    out += pii_samples(decisions, texts, rng)
    return "\n".join(out) + "\n"


def dedup_samples(pipeline: Path, labels: dict, texts: dict, rng: random.Random) -> list[str]:
    """Pages the dedup stages removed, each with the page (by label) it copies."""

    def ids(folder: str) -> set[str]:
        return {r["id"] for path in sorted((pipeline / folder).glob("*.jsonl")) for r in read_jsonl(path)}

    filtered, deduped, final = ids("filtered"), ids("deduped"), ids("final")
    url_to_id = {label["url"]: rid for rid, label in labels.items()}
    out = ["## exact_line_dedup and minhash_dedup", ""]
    for stage, removed in (("exact_line_dedup", filtered - deduped), ("minhash_dedup", deduped - final)):
        for record_id in rng.sample(sorted(removed), min(3, len(removed))):
            label = labels[record_id]
            original = url_to_id.get(label.get("copy_of", ""))
            note = f"copy of {label['copy_of']}" if original else "not a planted copy"
            out.append(f"- **{stage} dropped** ({kind_of(label)}, {note}): {excerpt(texts[record_id], 300)}")
    return [*out, ""]


def pii_samples(decisions: list[dict], texts: dict, rng: random.Random, count: int = 20) -> list[str]:
    """Replacements made by PII masking, each in a window of context."""
    modified = [d["id"] for d in decisions if d["step"] == "pii" and d["decision"] == "modified"]
    out = ["## pii: replacements in context", ""]
    for record_id in rng.sample(modified, min(count, len(modified))):
        masked, _ = mask_pii(texts[record_id])
        for match in list(re.finditer(r"\|\|\|[A-Z_]+\|\|\|", masked))[:1]:
            window = masked[max(0, match.start() - 80) : match.end() + 40]
            out.append(f"- {excerpt(window, 200)}")
    return [*out, ""]


def random_page_verdicts(labels: dict, texts: dict, rng: random.Random, count: int = 25) -> str:
    """Every classifier's verdict on random crawl pages (not only those that reach it in the pipeline)."""
    quality = QualityClassifier()
    rows = []
    for i, record_id in enumerate(rng.sample(sorted(texts), count)):
        label, text = labels[record_id], texts[record_id]
        language, score = identify_language(text)
        toxic, toxic_score = classify_toxic_speech(text)
        nsfw, nsfw_score = classify_nsfw(text)
        _, pii = mask_pii(text)
        rows.append([
            i, label["url"], kind_of(label), f"{label.get('language')} / {language} ({score:.2f})",
            gopher_rejection_reason(text) or "pass", f"{quality.high_quality_probability(text):.3f}",
            f"{toxic} ({toxic_score:.2f})", f"{nsfw} ({nsfw_score:.2f})",
            ", ".join(f"{k}={n}" for k, n in pii.items() if n) or "-",
        ])  # fmt: skip
    headers = ["#", "url", "kind (label)", "language: label / predicted (score)", "Gopher", "P(wiki)", "toxic", "nsfw"]
    table = markdown_table([*headers, "PII"], rows, align="rllllrlll")
    return f"# Every classifier on random crawl pages\n\n{table}\n"


def inspect_filters(config: InspectFiltersConfig) -> list[Path]:
    """Write the reports (see the module docstring); returns their paths."""
    decisions = [d for path in sorted((config.pipeline / "decisions").glob("*.jsonl")) for d in read_jsonl(path)]
    if not decisions:
        raise FileNotFoundError(f"{config.pipeline}/decisions is empty: run the pipeline with --log_decisions")
    labels, texts = load_crawl(config.crawl)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("stats.md", "stats.json", "stats.png"):
        shutil.copy(config.pipeline / name, config.out_dir / name)
    reports = {
        "by_kind.md": by_kind_table(decisions, labels),
        "samples.md": samples(decisions, labels, texts, config.pipeline, random.Random(config.seed)),
        "random_pages.md": random_page_verdicts(labels, texts, random.Random(config.seed + 1)),
    }
    return [write_text_atomic(config.out_dir / name, text) for name, text in reports.items()]
