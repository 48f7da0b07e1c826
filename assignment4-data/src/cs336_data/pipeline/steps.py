"""Pipeline steps: thin wrappers that apply the pure filter functions of :mod:`cs336_data` to a stream of documents.

Every step has ``run(documents, stats, rank, world_size)``, a generator, and records for its name how many documents
came in, were kept, were dropped (and why) or raised an error (a document whose filter raises is dropped with reason
``error:<ExceptionType>`` and logged, never lost silently and never crashing the shard).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from cs336_data.extraction import decode_html_bytes, extract_text_from_html_bytes
from cs336_data.gopher import GopherConfig, gopher_rejection_reason
from cs336_data.harmful import HarmKind, harm_classifier
from cs336_data.language_id import LanguageIdentifier
from cs336_data.pii import mask_pii
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.stats import PipelineStats
from cs336_data.quality import QualityClassifier

logger = logging.getLogger(__name__)


class PipelineStep(ABC):
    name: str
    # When a list is set here, every decision is appended to it: ``{"id", "step", "decision"}`` where the decision
    # is ``kept``, the drop reason, or (PII) ``modified``. The pipeline writes it per shard for inspection.
    decisions: list[dict] | None = None

    def record(self, document: Document, decision: str) -> None:
        if self.decisions is not None:
            self.decisions.append({"id": document.id, "step": self.name, "decision": decision})

    @abstractmethod
    def run(
        self, documents: Iterable[Document], stats: PipelineStats, rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]: ...


class FilterStep(PipelineStep):
    """A step that keeps or drops each document; subclasses say why they drop one (or may edit it in place)."""

    @abstractmethod
    def drop_reason(self, document: Document) -> str | None:
        """None to keep the document, else a short reason it is dropped."""

    def run(self, documents, stats, rank=0, world_size=1):
        for document in documents:
            stats.add(self.name, "in")
            try:
                reason = self.drop_reason(document)
            except Exception as err:  # noqa: BLE001 - one bad document must not stop the shard
                logger.warning("%s failed on %s: %r", self.name, document.id, err)
                reason = f"error:{type(err).__name__}"
            self.record(document, reason or "kept")
            if reason is None:
                stats.add(self.name, "kept")
                yield document
            else:
                stats.add(self.name, "dropped")
                stats.add(self.name, f"dropped:{reason}")


class HtmlExtraction(FilterStep):
    """Raw payload to text: HTML through resiliparse, WET text decoded; empty results are dropped."""

    name = "extract"

    def drop_reason(self, document):
        raw, document.raw = document.raw, None
        if raw is None:
            return None if document.text.strip() else "empty"
        if document.metadata.get("is_extracted_text"):
            document.text = decode_html_bytes(raw)
        else:
            document.text = extract_text_from_html_bytes(raw) or ""
        return None if document.text.strip() else "empty"


class LanguageFilter(FilterStep):
    name = "language"

    def __init__(self, languages: tuple[str, ...] = ("en",), min_score: float = 0.65, model_path: str | None = None):
        self.languages = languages
        self.min_score = min_score
        self.identify = LanguageIdentifier(model_path)

    def drop_reason(self, document):
        language, score = self.identify(document.text)
        document.metadata.update(language=language, language_score=round(score, 4))
        if language not in self.languages:
            return "other_language"
        return None if score >= self.min_score else "low_confidence"


class GopherFilter(FilterStep):
    name = "gopher"

    def __init__(self, config: GopherConfig | None = None):
        self.config = config or GopherConfig()

    def drop_reason(self, document):
        return gopher_rejection_reason(document.text, self.config)


class QualityFilter(FilterStep):
    """Drops documents whose probability of being ``wiki``-like is below ``min_probability``."""

    name = "quality"

    def __init__(self, min_probability: float = 0.5, model_path: str | None = None):
        self.min_probability = min_probability
        self.classifier = QualityClassifier(model_path)

    def drop_reason(self, document):
        p = self.classifier.high_quality_probability(document.text)
        document.metadata["quality"] = round(p, 4)
        return None if p >= self.min_probability else "low_quality"


class HarmFilter(FilterStep):
    """Drops documents the NSFW or toxic-speech classifier flags with at least ``threshold`` confidence."""

    def __init__(self, kind: HarmKind, threshold: float = 0.5, model_path: str | None = None):
        self.kind = kind
        self.name = kind.name
        self.threshold = threshold
        self.classifier = harm_classifier(kind, model_path)

    def drop_reason(self, document):
        label, score = self.classifier(document.text)
        return self.kind.positive if label == self.kind.positive and score >= self.threshold else None


class PiiMasking(PipelineStep):
    """Masks e-mails, phone numbers and IPv4 addresses; keeps every document, counts the replacements."""

    name = "pii"

    def run(self, documents, stats, rank=0, world_size=1):
        for document in documents:
            stats.add(self.name, "in")
            document.text, counts = mask_pii(document.text)
            for kind, n in counts.items():
                if n:
                    stats.add(self.name, f"masked:{kind}", n)
            modified = any(counts.values())
            if modified:
                stats.add(self.name, "modified")
            self.record(document, "modified" if modified else "kept")
            stats.add(self.name, "kept")
            yield document
