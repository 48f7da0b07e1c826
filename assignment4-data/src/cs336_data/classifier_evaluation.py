"""Accuracy of the offline classifiers on labelled text they were not trained on.

* Harmful content (``classify_toxic_speech`` / ``classify_nsfw``, whichever backend is active): the 6,594
  human-labelled comments of the Impermium insults data set (insult or not), which neither alt-profanity-check nor the
  Dolma models were trained on. Insults are one kind of toxic speech, so this measures the toxic label; NSFW has no
  labelled offline data (the offline backend gives both labels from one model).
* Quality (``wiki`` vs ``cc``): the sample crawl's pages, labelled by how they were built: English documentation
  (high quality) against spam, thin pages, comment threads and list mail (low); pages whose text the model was
  trained on (the gensim articles, the spam in its training split) are excluded by construction.
* Language ID: the crawl's documentation pages, whose language is known from their package.
* How often the toxic-speech classifier flags each kind of crawl page (comment threads with and without insults).

Writes ``<out_dir>/classifier_accuracy.json`` and ``.md``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic, write_text_atomic
from cs336_basics.toolkit.tables import markdown_table

from cs336_data.crawl.sources import fetch_insults, insult_comments
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.harmful import NSFW, TOXIC, harm_classifier
from cs336_data.language_id import LanguageIdentifier
from cs336_data.quality import HIGH_QUALITY_LABEL, QualityClassifier
from cs336_data.warc_io import iter_warc_responses


@dataclass(frozen=True)
class EvaluateClassifiersConfig:
    """Accuracy of the offline classifiers on labelled text they were not trained on."""

    crawl: Path | None = field(
        default=None, metadata={"help": "a built sample crawl (none: the harmful-content classifiers only)"}
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/classifiers"),
        metadata={"help": "folder for classifier_accuracy.json and .md"},
    )


LOW_QUALITY_KINDS = ("spam", "thin", "forum", "mailing_list")
LID_CODES = {"zh-cn": "zh"}


def binary_scores(truth: list[bool], predicted: list[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, predicted))
    fp = sum(p and not t for t, p in zip(truth, predicted))
    fn = sum(t and not p for t, p in zip(truth, predicted))
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return {
        "examples": len(truth),
        "positives": sum(truth),
        "accuracy": sum(t == p for t, p in zip(truth, predicted)) / max(len(truth), 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
    }


def harmful_accuracy() -> dict:
    comments = insult_comments(fetch_insults())
    result = {}
    for kind in (TOXIC, NSFW):
        classifier = harm_classifier(kind)
        predicted = [classifier(c.text)[0] == kind.positive for c in comments]
        result[kind.name] = {
            "backend": type(classifier).__name__,
            **binary_scores([c.insult for c in comments], predicted),
        }
    return result


def crawl_pages(crawl: Path):
    """``(label, extracted text)`` of every response record of the crawl's WARC shards."""
    for shard in sorted(crawl.glob("CC-SAMPLE-*.warc.gz")):
        labels_path = crawl / "labels" / shard.name.replace(".warc.gz", ".jsonl")
        labels = {json.loads(line)["record_id"]: json.loads(line) for line in labels_path.read_text().splitlines()}
        for page in iter_warc_responses(shard):
            yield labels[page.record_id], extract_text_from_html_bytes(page.body) or ""


def crawl_accuracy(crawl: Path) -> tuple[dict, dict, dict]:
    quality, lid, toxic = QualityClassifier(), LanguageIdentifier(), harm_classifier(TOXIC)
    flagged: dict[str, Counter] = defaultdict(Counter)
    truth, predicted = [], []
    by_kind: dict[str, Counter] = defaultdict(Counter)
    lid_rows: dict[str, Counter] = defaultdict(Counter)
    for label, text in crawl_pages(crawl):
        kind = label["kind"]
        if not label.get("copy"):
            group = kind if kind != "forum" else f"forum ({'with' if label['insults'] else 'no'} insults)"
            flagged[group]["pages"] += 1
            flagged[group]["toxic"] += toxic(text)[0] == TOXIC.positive
        if kind in ("documentation", "translation"):
            language, _ = lid(text)
            expected = LID_CODES.get(label["language"], label["language"])
            lid_rows[expected]["pages"] += 1
            lid_rows[expected]["correct"] += language == expected
        if label.get("copy") or label.get("in_quality_training") or kind not in ("documentation", *LOW_QUALITY_KINDS):
            continue
        is_wiki = quality(text)[0] == HIGH_QUALITY_LABEL
        truth.append(kind == "documentation")
        predicted.append(is_wiki)
        by_kind[kind]["pages"] += 1
        by_kind[kind]["wiki"] += is_wiki
    quality_result = {
        **binary_scores(truth, predicted),
        "wiki_share_by_kind": {k: c["wiki"] / c["pages"] for k, c in sorted(by_kind.items())},
    }
    lid_result = {
        language: {"pages": c["pages"], "accuracy": c["correct"] / c["pages"]}
        for language, c in sorted(lid_rows.items())
    }
    toxic_result = {group: c["toxic"] / c["pages"] for group, c in sorted(flagged.items())}
    return quality_result, lid_result, toxic_result


def markdown(result: dict) -> str:
    def scores(r: dict) -> list:
        return [r["examples"], r["positives"], *(f"{r[k]:.3f}" for k in ("accuracy", "precision", "recall", "f1"))]

    rows = [
        [f"{name} ({r['backend']})", "insults (label: insult)", *scores(r)] for name, r in result["harmful"].items()
    ]
    if "quality" in result:
        rows.append(
            ["quality (wiki = positive)", "crawl: documentation vs spam/thin/forum/mail", *scores(result["quality"])]
        )
    headers = ["classifier", "labelled set", "n", "positives", "accuracy", "precision", "recall", "F1"]
    lines = [markdown_table(headers, rows, align="llrrrrrr")]
    if "quality" in result:
        q = result["quality"]
        lines += ["", "Share of pages the quality model calls `wiki`, by kind:", ""]
        lines += [f"- {kind}: {share:.3f}" for kind, share in q["wiki_share_by_kind"].items()]
    if "toxic_share_by_kind" in result:
        lines += ["", "Share of crawl pages the toxic-speech classifier flags, by kind (whole pages):", ""]
        lines += [f"- {kind}: {share:.3f}" for kind, share in result["toxic_share_by_kind"].items()]
    if "language_id" in result:
        lines += ["", "Language ID (top label) on documentation pages, by true language:", ""]
        lines += [f"- {lang}: {r['accuracy']:.3f} of {r['pages']}" for lang, r in result["language_id"].items()]
    return "\n".join(lines) + "\n"


def evaluate_classifiers(config: EvaluateClassifiersConfig) -> str:
    """Measure, write ``classifier_accuracy.{json,md}``; returns the Markdown."""
    if config.crawl is not None and not (config.crawl / "manifest.json").is_file():
        raise FileNotFoundError(f"{config.crawl} is not a built sample crawl (no manifest.json): build_sample_crawl.py")
    result: dict = {"harmful": harmful_accuracy()}
    if config.crawl is not None:
        result["quality"], result["language_id"], result["toxic_share_by_kind"] = crawl_accuracy(config.crawl)
    write_json_atomic(config.out_dir / "classifier_accuracy.json", result, indent=1)
    table = markdown(result)
    write_text_atomic(config.out_dir / "classifier_accuracy.md", table)
    return table
