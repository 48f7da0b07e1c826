"""Why the first filter-versus-raw run came out as it did, from the crawl's labels, the pipelines' decision logs and
outputs, and the token files (WRITEUP.md, "First run").

Every crawl page is labelled (kind, source package); the filters never read the labels, this module does:

* what each corpus is made of: characters per part of the crawl (:data:`PARTS`: English documentation by manual,
  articles, the rest by kind), and the held-out articles by source;
* which filter removes what, per pipeline: each part's raw characters by what became of them: the step that dropped
  the page, the dedups (pages dropped whole; lines removed from pages that survive), kept;
* what a model reads at the training budget: each part's characters times the corpus's epochs;
* how much of the held-out articles the quality classifier's positives hold: the share of their 12-word pieces
  (as the overlap checks of :mod:`.heldout` count them) that occur in the texts its ``wiki`` class is drawn from;
* a Witten-Bell bigram model (:mod:`.bigram`) fitted on equal unique tokens of each training corpus, scored on the
  held-out sets: the same question without the GPU and without repeated epochs.

The inputs are those of ``prepare_filter_experiment.py``: the crawl, ``pipeline_<name>/{decisions,final}`` and
``data/``. Each corpus's characters as counted here must equal ``data/meta.json``'s, so a crawl or pipeline run that
is not the one the token files came from stops the command. Out: ``diagnostics.json`` and ``diagnostics.md``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import markdown_table
from jaxtyping import UInt16

from cs336_data.filter_experiment.bigram import WittenBellBigram, random_windows
from cs336_data.filter_experiment.training import FilterVsRawConfig, budget_steps

MANUALS = {
    "python3.11-doc": "Python + Django",
    "python-django-doc": "Python + Django",
    "postgresql-doc-15": "PostgreSQL",
    "git-doc": "Git + Debian",
    "debian-reference-en": "Git + Debian",
    "developers-reference": "Git + Debian",
    "maint-guide": "Git + Debian",
    "debian-faq": "Git + Debian",
}
DOCUMENTATION = ("Python + Django", "PostgreSQL", "Git + Debian", "other documentation")
PARTS = (*DOCUMENTATION, "articles", "mail, spam, threads, thin", "translations")
TRAINING = ("raw", "filtered", "filtered_no_quality")
HELDOUT = {"heldout_docs": "documentation", "heldout_articles": "article"}
# What became of a page's raw characters: the filter step that dropped it, else the dedups, else kept.
OUTCOMES = {
    "extract": "extraction",
    "language": "language ID",
    "gopher": "Gopher",
    "quality": "quality",
    "nsfw": "NSFW",
    "toxic": "toxic",
    "dedup_pages": "dedup, whole pages",
    "dedup_lines": "dedup, lines",
    "kept": "kept",
}


@dataclass(frozen=True)
class DiagnoseConfig:
    """Why the first filter-versus-raw run came out as it did: what each corpus is made of, which filter removes
    what, what a model reads at the budget, and a bigram cross-check, from the crawl's labels, the pipelines'
    decision logs and outputs and the token files."""

    crawl: Path = field(default=Path("assignment4-data/runs/crawl"), metadata={"help": "the sample crawl"})
    experiment: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw"),
        metadata={"help": "out_dir of prepare_filter_experiment.py (pipeline_<name>/, data/)"},
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/filter_vs_raw/diagnostics"),
        metadata={"help": "folder for diagnostics.json and diagnostics.md"},
    )
    budget: str = field(
        default="filtered_no_quality",
        metadata={"help": "training budget of the reads: tokens or a corpus name, in the first run's whole batches"},
    )
    window: int = field(default=256, metadata={"help": "tokens per window of the bigram's training sample"})
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 4], metadata={"help": "one bigram sample of windows per seed"}
    )

    def __post_init__(self):
        if self.window < 2:
            raise ValueError(f"window must be at least 2 tokens (one pair), got {self.window}")
        if not self.seeds:
            raise ValueError("seeds is empty: the bigram needs at least one sample")
        if self.budget.isdigit() and int(self.budget) <= 0:
            raise ValueError(f"budget must be a positive number of tokens or a corpus name, got {self.budget!r}")


def part_of(label: dict) -> str:
    """The part of the crawl a page belongs to (:data:`PARTS`), from its label."""
    kind = label["kind"]
    if kind == "documentation":
        return MANUALS.get(label["source"].split("_")[0], "other documentation")
    return {"article": "articles", "translation": "translations"}.get(kind, "mail, spam, threads, thin")


def characters_by_part(documents: Iterable[tuple[dict, int]]) -> dict[str, int]:
    """Characters per part of ``(label, characters)`` documents, every part listed."""
    counts: Counter[str] = Counter()
    for label, characters in documents:
        counts[part_of(label)] += characters
    return {part: counts[part] for part in PARTS}


def removal_by_part(
    labels: dict[str, dict], raw_characters: dict[str, int], decisions: list[dict], kept_characters: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Each part's raw characters by outcome (:data:`OUTCOMES`). A page dropped by a filter step counts there; a page
    that passed every filter but is not in the output was dropped whole by a dedup; a page in the output counts its
    kept characters as ``kept`` and the rest (the lines exact-line dedup removed, and PII masking's length changes)
    as ``dedup_lines``. ``decisions`` are the pipeline's ``{"id", "step", "decision"}`` records in order."""
    decided, dropped_at = set(), {}
    for decision in decisions:
        decided.add(decision["id"])
        if decision["decision"] not in ("kept", "modified"):
            dropped_at.setdefault(decision["id"], decision["step"])
    if missing := sorted(raw_characters.keys() - decided):
        raise ValueError(f"{len(missing)} crawl pages (e.g. {missing[0]}) have no decision: logs of another crawl?")
    if unknown := sorted(kept_characters.keys() - raw_characters.keys()):
        raise ValueError(f"{len(unknown)} output documents (e.g. {unknown[0]}) are not crawl pages")
    removal: dict[str, Counter[str]] = defaultdict(Counter)
    for record_id, characters in raw_characters.items():
        outcome = removal[part_of(labels[record_id])]
        if record_id in dropped_at:
            outcome[dropped_at[record_id]] += characters
        elif record_id in kept_characters:
            outcome["kept"] += kept_characters[record_id]
            outcome["dedup_lines"] += characters - kept_characters[record_id]
        else:
            outcome["dedup_pages"] += characters
    return {part: dict(removal[part]) for part in PARTS if part in removal}


def shared_pieces(texts: list[str], reference: list[str]) -> tuple[int, int]:
    """How many distinct 12-word pieces of ``texts`` occur in ``reference``, and how many they have."""
    from cs336_data.filter_experiment.heldout import word_pieces

    pieces = set().union(*map(word_pieces, texts))
    return len(pieces & set().union(*map(word_pieces, reference))), len(pieces)


def bigram_cross_entropies(
    tokens: dict[str, UInt16[np.ndarray, " tokens"]], vocab_size: int, window: int, seeds: list[int]
) -> dict:
    """Per seed, a Witten-Bell bigram fitted on each training corpus's random windows, as many as the smallest corpus
    holds (equal unique tokens; the smallest is taken whole), and its cross-entropy in nats per token on each
    held-out set (``cross_entropy[corpus][heldout]``: one value per seed)."""
    count = min(len(tokens[name]) for name in TRAINING) // window
    cross_entropy: dict[str, dict[str, list[float]]] = {name: {h: [] for h in HELDOUT} for name in TRAINING}
    for seed in seeds:
        for name in TRAINING:
            model = WittenBellBigram.fit(random_windows(tokens[name], count, window, seed), vocab_size)
            for heldout in HELDOUT:
                cross_entropy[name][heldout].append(model.cross_entropy(tokens[heldout]))
    return {
        "windows": count,
        "window": window,
        "tokens": count * window,
        "seeds": seeds,
        "cross_entropy": cross_entropy,
    }


def check_characters(name: str, characters: int, meta: dict) -> None:
    """Stop when the labelled inputs are not the text the token files were made from."""
    if name not in meta["corpora"]:
        raise ValueError(f"meta.json has no corpus {name!r}: run prepare_filter_experiment.py")
    expected = meta["corpora"][name]["characters"]
    if characters != expected:
        raise ValueError(
            f"{name}: {characters:,} characters in the crawl and pipeline outputs read here, {expected:,} in "
            "meta.json: --crawl and --experiment must be the inputs and outputs of one prepare_filter_experiment.py"
        )


def load_inputs(config: DiagnoseConfig) -> dict:
    """Labels and extracted text of every crawl page, each pipeline's decisions and output, the held-out documents
    and ``meta.json``; a missing input stops with the command that makes it."""
    from cs336_data.filter_experiment.prepare import PIPELINES, jsonl
    from cs336_data.filter_inspection import load_crawl, read_jsonl

    meta_path = config.experiment / "data" / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no {meta_path}: run prepare_filter_experiment.py (or point --experiment at its out)")
    if not (config.crawl / "heldout.jsonl").is_file() or not list(config.crawl.glob("CC-SAMPLE-*.warc.gz")):
        raise FileNotFoundError(f"{config.crawl} holds no sample crawl: run build_sample_crawl.py")
    meta = json.loads(meta_path.read_text())
    labels, texts = load_crawl(config.crawl)
    pipelines = {}
    for name in PIPELINES:
        folder = config.experiment / f"pipeline_{name}"
        decisions = [d for path in sorted((folder / "decisions").glob("*.jsonl")) for d in read_jsonl(path)]
        if not decisions:
            raise FileNotFoundError(f"{folder}/decisions is empty: the pipeline must run with --log_decisions")
        output = [d for path in sorted((folder / "final").glob("*.jsonl")) for d in read_jsonl(path)]
        pipelines[name] = {"decisions": decisions, "output": output}
    heldout = [json.loads(line) for line in jsonl(config.crawl / "heldout.jsonl")]
    return {"meta": meta, "labels": labels, "texts": texts, "pipelines": pipelines, "heldout": heldout}


def diagnose(config: DiagnoseConfig) -> dict:
    """Every measurement of the module docstring, checked against ``meta.json``."""
    from cs336_data.filter_experiment.heldout import quality_positive_texts

    inputs = load_inputs(config)
    meta, labels = inputs["meta"], inputs["labels"]
    raw = {rid: len(text) if text.strip() else 0 for rid, text in inputs["texts"].items()}
    corpora: dict[str, list[tuple[dict, int]]] = {"raw": [(labels[rid], n) for rid, n in raw.items() if n]}
    removal = {}
    for name, pipeline in inputs["pipelines"].items():
        kept = {d["id"]: len(d["text"]) for d in pipeline["output"]}
        removal[name] = removal_by_part(labels, raw, pipeline["decisions"], kept)
        corpora[name] = [(labels[rid], n) for rid, n in kept.items()]
    for name, kind in HELDOUT.items():
        corpora[name] = [(d, len(d["text"])) for d in inputs["heldout"] if d["kind"] == kind]
    for name, documents in corpora.items():
        check_characters(name, sum(n for _, n in documents), meta)
    composition = {name: characters_by_part(documents) for name, documents in corpora.items()}

    articles = [d for d in inputs["heldout"] if d["kind"] == "article"]
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for article in articles:
        by_source[article["source"]].update(documents=1, characters=len(article["text"]))
    positives = quality_positive_texts()
    shared, pieces = shared_pieces([a["text"] for a in articles], positives)

    run = FilterVsRawConfig()
    trained = (
        budget_steps(config.budget, meta, run.batch_size, run.context_length) * run.batch_size * run.context_length
    )
    reads = {}
    for name in TRAINING:
        epochs = trained / meta["corpora"][name]["tokens"]
        reads[name] = {"epochs": epochs, "characters_read": {p: epochs * n for p, n in composition[name].items()}}

    from cs336_basics.data import load_tokens

    tokens = {name: load_tokens(config.experiment / "data" / f"{name}.bin") for name in (*TRAINING, *HELDOUT)}
    return {
        "composition": composition,
        "heldout_articles": {
            "by_source": {source: dict(counts) for source, counts in sorted(by_source.items())},
            "windows": (len(tokens["heldout_articles"]) - 1) // run.context_length,
            "context_length": run.context_length,
            "pieces": pieces,
            "pieces_in_quality_positives": shared,
            "quality_positive_texts": len(positives),
        },
        "removal": removal,
        "reads": {"budget": config.budget, "tokens_trained": trained, "corpora": reads},
        "bigram": bigram_cross_entropies(tokens, meta["vocab_size"], config.window, config.seeds),
    }


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def composition_section(composition: dict[str, dict[str, int]]) -> list[str]:
    shown = [p for p in PARTS if any(c[p] for c in composition.values())]
    rows = []
    for name, parts in composition.items():
        total, documentation = sum(parts.values()), sum(parts[p] for p in DOCUMENTATION)
        rows.append(
            [name, f"{total / 1e6:.2f} M", percent(documentation, total), *(percent(parts[p], total) for p in shown)]
        )
    manuals = [p for p in DOCUMENTATION if p in shown]
    mix = [
        [name, *(percent(parts[p], sum(parts[m] for m in manuals)) for p in manuals)]
        for name, parts in composition.items()
        if any(parts[m] for m in manuals)
    ]
    return [
        "## What each corpus is made of (characters, by page kind from the crawl's labels)",
        "",
        markdown_table(["corpus", "characters", "English documentation", *shown], rows, "lr" + "r" * (len(shown) + 1)),
        "",
        "English documentation by manual (share of the corpus's English documentation characters):",
        "",
        markdown_table(["corpus", *manuals], mix, "l" + "r" * len(manuals)),
    ]


def articles_section(articles: dict) -> list[str]:
    total = sum(source["characters"] for source in articles["by_source"].values())
    rows = [
        [name, source["documents"], f"{source['characters']:,}", percent(source["characters"], total)]
        for name, source in articles["by_source"].items()
    ]
    shared, pieces = articles["pieces_in_quality_positives"], articles["pieces"]
    return [
        "## The held-out articles",
        "",
        markdown_table(["source", "documents", "characters", "share"], rows, "lrrr"),
        "",
        f"{articles['windows']} windows of {articles['context_length']} tokens. Of their {pieces:,} distinct 12-word "
        f"pieces, {shared:,} ({percent(shared, pieces)}) occur in the {articles['quality_positive_texts']:,} texts the "
        "quality classifier's `wiki` examples are drawn from.",
    ]


def removal_section(pipeline: str, removal: dict[str, dict[str, int]]) -> list[str]:
    outcomes = [o for o in OUTCOMES if any(counts.get(o) for counts in removal.values())]
    rows = []
    for part, counts in removal.items():
        total = sum(counts.values())
        rows.append([f"{part} ({total / 1e6:.1f} M)", *(percent(counts.get(o, 0), total) for o in outcomes)])
    headers = ["part (raw characters)", *(OUTCOMES[o] for o in outcomes)]
    return [
        f"## Which filter removes what: `{pipeline}` (share of each part's raw characters)",
        "",
        markdown_table(headers, rows, "l" + "r" * len(outcomes)),
    ]


def reads_section(reads: dict) -> list[str]:
    shown = [p for p in PARTS if any(r["characters_read"][p] for r in reads["corpora"].values())]
    rows = [
        [name, f"{r['epochs']:.2f}", *(f"{r['characters_read'][p] / 1e6:.2f} M" for p in shown)]
        for name, r in reads["corpora"].items()
    ]
    return [
        f"## Expected characters read in {reads['tokens_trained']:,} training tokens (budget `{reads['budget']}`)",
        "",
        markdown_table(["corpus", "epochs", *shown], rows, "lr" + "r" * len(shown)),
    ]


def bigram_section(bigram: dict) -> list[str]:
    rows = [
        [name, *(f"{np.mean(values[h]):.3f} ({max(values[h]) - min(values[h]):.3f})" for h in HELDOUT)]
        for name, values in bigram["cross_entropy"].items()
    ]
    seeds = ", ".join(map(str, bigram["seeds"]))
    return [
        "## Witten-Bell bigram cross-entropy (nats per token)",
        "",
        f"Fitted on {bigram['windows']:,} random non-overlapping windows of {bigram['window']} tokens of each corpus "
        f"({bigram['tokens']:,} tokens: the smallest corpus whole). Mean over {len(bigram['seeds'])} samples of "
        f"windows (seeds {seeds}), in brackets the range between them.",
        "",
        markdown_table(["trained on", *HELDOUT], rows, "l" + "r" * len(HELDOUT)),
    ]


def markdown(report: dict) -> str:
    """The report's tables, in the order WRITEUP.md reads them."""
    sections = [
        [
            "# Why the first filter-versus-raw run came out as it did",
            "",
            "Written by `scripts/diagnose_filter_experiment.py` (`cs336_data.filter_experiment.diagnostics`) from the "
            "crawl's labels, the pipelines' decision logs and outputs, and the token files.",
        ],
        composition_section(report["composition"]),
        articles_section(report["heldout_articles"]),
        *(removal_section(pipeline, removal) for pipeline, removal in report["removal"].items()),
        reads_section(report["reads"]),
        bigram_section(report["bigram"]),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def diagnose_filter_experiment(config: DiagnoseConfig) -> list[Path]:
    """Write ``diagnostics.json`` and ``diagnostics.md`` into ``out_dir``; returns their paths."""
    report = diagnose(config)
    return [
        write_json_atomic(config.out_dir / "diagnostics.json", report, indent=1),
        write_text_atomic(config.out_dir / "diagnostics.md", markdown(report)),
    ]
