"""Held-out sets drawn like the filtered output, and the proof that neither training corpus nor the quality
classifier's positives hold their text.

The crawl's held-out pages (never crawled; ``HELDOUT-PAGES.warc.gz``) go through the same pipeline as a training
corpus, so a held-out set holds what the filters keep, not what the raw crawl holds. Then, per kept document:

1. every line that also occurs (stripped) in a training corpus or in the quality classifier's positives is removed
   (site chrome, navigation, repeated notes), and a document left with fewer than ``min_chars`` characters dropped;
2. a document whose normalised text equals a reference document (exact duplicate), whose word 5-gram Jaccard with
   one reaches the MinHash threshold (near duplicate, candidates from the pipeline's LSH), or of whose word 12-grams
   at least ``max_contained`` occur in a reference corpus (contained: a copy inside a longer page) is dropped.

The report says, per reference corpus, how many documents each check dropped and how much the kept ones still
share with it (12-gram containment, largest Jaccard), and what the kept set is made of (page kinds and sources).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cs336_data.dedup.minhash import MinHashConfig, MinHasher
from cs336_data.dedup.normalize import jaccard, normalize_for_dedup, word_ngrams
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.run import PipelineConfig, run_pipeline

PIECE_WORDS = 12  # a shared 12-word piece is shared text, not a common phrase


@dataclass(frozen=True)
class OverlapChecks:
    min_chars: int = 1000
    max_contained: float = 0.5
    minhash: MinHashConfig = MinHashConfig()


def word_pieces(text: str, n: int = PIECE_WORDS) -> set[int]:
    """Hashes of the normalised text's word n-grams (a text shorter than n words has none)."""
    words = normalize_for_dedup(text).split()
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


class Reference:
    """One corpus the held-out text must not share with: its lines, exact texts, 12-gram pieces and LSH buckets."""

    def __init__(self, texts: list[str], hasher: MinHasher):
        self.texts = texts
        self.lines = {line.strip() for text in texts for line in text.splitlines() if line.strip()}
        self.exact = {normalize_for_dedup(text) for text in texts}
        self.pieces = set().union(*map(word_pieces, texts)) if texts else set()
        self.hasher = hasher
        self.buckets: dict[tuple[int, int], list[int]] = {}
        for index, keys in enumerate(hasher.documents_band_keys(texts)):
            for band, key in enumerate(keys.tolist()):
                self.buckets.setdefault((band, key), []).append(index)

    def largest_jaccard(self, text: str) -> float:
        """Largest true 5-gram Jaccard with a reference document that shares an LSH bucket (0 when none does)."""
        [keys] = self.hasher.documents_band_keys([text])
        candidates = {i for band, key in enumerate(keys.tolist()) for i in self.buckets.get((band, key), ())}
        grams = word_ngrams(text, self.hasher.config.ngrams)
        n = self.hasher.config.ngrams
        return max((jaccard(grams, word_ngrams(self.texts[i], n)) for i in candidates), default=0.0)

    def contained(self, text: str) -> float:
        """Share of the text's 12-word pieces that occur in the reference."""
        pieces = word_pieces(text)
        return len(pieces & self.pieces) / len(pieces) if pieces else 0.0


def pipeline_documents(shard: Path, out: Path, settings: dict, workers: int) -> list[Document]:
    """The documents the pipeline keeps from one shard (its filters, PII masking and dedups)."""
    config = PipelineConfig(inputs=[shard], out_dir=out, log_decisions=True, workers=workers, **settings)
    run_pipeline(config)
    return [
        Document.from_json(line)
        for path in sorted((out / "final").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").split("\n")
        if line
    ]


def page_labels(labels_path: Path) -> dict[str, dict]:
    """Labels of a shard's pages by URL."""
    lines = labels_path.read_text(encoding="utf-8").split("\n")
    return {label["url"]: label for label in map(json.loads, filter(None, lines))}


def clean_heldout(
    documents: list[Document], labels: dict[str, dict], references: dict[str, Reference], checks: OverlapChecks
) -> tuple[list[str], dict]:
    """The documents' texts that pass the overlap checks, and the report (see the module docstring)."""
    seen_lines = set().union(*(r.lines for r in references.values()))
    dropped: Counter[tuple[str, str]] = Counter()
    kept: list[tuple[Document, str, dict]] = []
    lines_removed = 0
    for document in documents:
        kind = labels.get(document.metadata.get("url", ""), {}).get("kind", "unknown")
        lines = [line for line in document.text.splitlines() if line.strip()]
        own = [line for line in lines if line.strip() not in seen_lines]
        lines_removed += len(lines) - len(own)
        text = "\n".join(own)
        if len(text) < checks.min_chars:
            dropped["short_after_shared_lines_removed", kind] += 1
            continue
        normalised = normalize_for_dedup(text)
        scores = {
            name: {"jaccard": ref.largest_jaccard(text), "contained": ref.contained(text)}
            for name, ref in references.items()
        }
        reason = next(
            (f"exact_duplicate:{name}" for name, r in references.items() if normalised in r.exact), None
        ) or next(
            (
                f"{check}:{name}"
                for name, s in scores.items()
                for check, hit in (
                    ("near_duplicate", s["jaccard"] >= checks.minhash.jaccard_threshold),
                    ("contained", s["contained"] >= checks.max_contained),
                )
                if hit
            ),
            None,
        )
        if reason:
            dropped[reason, kind] += 1
        else:
            kept.append((document, text, scores))
    by_kind: Counter[str] = Counter()
    characters_by_source: Counter[str] = Counter()
    for document, text, _ in kept:
        label = labels.get(document.metadata.get("url", ""), {})
        by_kind[label.get("kind", "unknown")] += 1
        characters_by_source[label.get("source", "unknown").split("_")[0].split("/")[0]] += len(text)
    report = {
        "pages_kept_by_pipeline": len(documents),
        "lines_removed_as_shared": lines_removed,
        "dropped": dict(sorted(Counter(reason for reason, _ in dropped.elements()).items())),
        "dropped_by_kind": {
            reason: {kind: n for (r, kind), n in sorted(dropped.items()) if r == reason}
            for reason in sorted({reason for reason, _ in dropped})
        },
        "documents": len(kept),
        "characters": sum(len(text) for _, text, _ in kept),
        "documents_by_kind": dict(sorted(by_kind.items())),
        "characters_by_source": dict(characters_by_source.most_common()),
        "overlap_of_kept": {
            name: {
                "largest_jaccard": max((s[name]["jaccard"] for *_, s in kept), default=0.0),
                "mean_contained": statistics.fmean(s[name]["contained"] for *_, s in kept) if kept else 0.0,
                "largest_contained": max((s[name]["contained"] for *_, s in kept), default=0.0),
                "documents_sharing_a_piece": sum(s[name]["contained"] > 0 for *_, s in kept),
            }
            for name in references
        },
        "checks": {
            "min_chars": checks.min_chars,
            "near_duplicate_jaccard": checks.minhash.jaccard_threshold,
            "jaccard_ngram_words": checks.minhash.ngrams,
            "max_contained": checks.max_contained,
            "piece_words": PIECE_WORDS,
        },
    }
    return [text for _, text, _ in kept], report


def build_references(corpora: dict[str, list[str]], checks: OverlapChecks) -> dict[str, Reference]:
    hasher = MinHasher(checks.minhash)
    return {name: Reference(texts, hasher) for name, texts in corpora.items()}


def quality_positive_texts() -> list[str]:
    """Every text the quality classifier's ``wiki`` class is drawn from (its training split is a subset)."""
    from cs336_data.quality_training import lee_news_documents, wikipedia_chunks

    return [*wikipedia_chunks(), *lee_news_documents()]
