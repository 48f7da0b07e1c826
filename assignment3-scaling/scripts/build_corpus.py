"""Build the service's token file from local text files: by default the Python standard library sources.

uv run python assignment3-scaling/scripts/build_corpus.py --out corpus_dir
# the GPU study's corpus: Python sources of the stdlib and four packages pinned in uv.lock (~30M tokens)
SP=$(uv run python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
uv run python assignment3-scaling/scripts/build_corpus.py --out .carry/code_corpus --max-tokens 30000000 \
    --sources "$(uv run python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")" \
    $SP/torch $SP/numpy $SP/scipy $SP/pandas
uv run python assignment3-scaling/scripts/build_corpus.py --sources my_texts/ --pattern '*.txt' --out corpus
"""

from __future__ import annotations

import argparse
import sysconfig

from cs336_scaling.corpus import CorpusConfig, build_corpus


def parse_args() -> CorpusConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", default=[sysconfig.get_paths()["stdlib"]], help="files or folders")
    parser.add_argument("--out", required=True, help="folder for tokens.bin, vocab.json, merges.txt, corpus.json")
    parser.add_argument("--pattern", default="*.py", help="file name pattern inside source folders")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--bpe-sample-bytes", type=int, default=8 << 20, help="train the BPE on this much text")
    parser.add_argument("--max-tokens", type=int, default=28_000_000)
    parser.add_argument("--seed", type=int, default=0, help="document order")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    return CorpusConfig(
        sources=tuple(args.sources),
        out_dir=args.out,
        pattern=args.pattern,
        vocab_size=args.vocab_size,
        bpe_sample_bytes=args.bpe_sample_bytes,
        max_tokens=args.max_tokens,
        seed=args.seed,
        workers=args.workers,
    )


def main() -> None:
    print(f"wrote {build_corpus(parse_args())}")


if __name__ == "__main__":
    main()
