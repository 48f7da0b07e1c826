"""Collect deduplicated English prose from Debian documentation packages, one text file per document.

uv run python assignment3-scaling/scripts/debian_text.py --debs debs --out english_text
uv run python assignment3-scaling/scripts/build_corpus.py --sources english_text --pattern '*.txt' \
    --vocab-size 256 --max-tokens 400000000 --out english_corpus
"""

from __future__ import annotations

import argparse
import json

from cs336_scaling.debian_text import DEFAULT_PACKAGES, DebianTextConfig, build_debian_text


def parse_args() -> DebianTextConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for <package>/<n>.txt")
    parser.add_argument("--debs", default="debs", help="folder of .deb files; missing ones are fetched with apt-get")
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES))
    parser.add_argument("--min-document-chars", type=int, default=1000)
    parser.add_argument("--max-document-chars", type=int, default=50_000, help="longer texts are cut at paragraphs")
    parser.add_argument("--min-stopword-fraction", type=float, default=0.15, help="English filter")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    return DebianTextConfig(
        out_dir=args.out,
        packages=tuple(args.packages),
        debs_dir=args.debs,
        min_document_chars=args.min_document_chars,
        max_document_chars=args.max_document_chars,
        min_stopword_fraction=args.min_stopword_fraction,
        workers=args.workers,
    )


def main() -> None:
    print(json.dumps(build_debian_text(parse_args()), indent=2))


if __name__ == "__main__":
    main()
