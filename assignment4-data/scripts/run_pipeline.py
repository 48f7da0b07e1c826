"""Common Crawl WARC/WET shards in, filtered + deduplicated + tokenised shards out.

    uv run python assignment4-data/scripts/run_pipeline.py --inputs CC-*.warc.wet.gz --out_dir out/ \\
        --vocab gpt2_vocab.json --merges gpt2_merges.txt            # local process pool
    ... --executor slurm --slurm.partition a4-cpu --slurm.account student     # one SLURM array per stage (submitit)

Rerunning the same command resumes: finished shards are skipped. Counts per step: out/stats.md and out/stats.png.
"""

from __future__ import annotations

import logging

from cs336_basics.toolkit.cli import parse_config
from cs336_data.harmful import NSFW, TOXIC, describe_harm_backend
from cs336_data.pipeline.run import PipelineConfig, run_pipeline


def main() -> None:
    config = parse_config(PipelineConfig, description=__doc__)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for kind, path in ((NSFW, config.nsfw_model), (TOXIC, config.toxic_model)):
        print(describe_harm_backend(kind, path))
    print(run_pipeline(config).table())
    print(f"\ntokens in {config.out_dir / 'tokens'}; counts in {config.out_dir / 'stats.md'} and stats.png")


if __name__ == "__main__":
    main()
