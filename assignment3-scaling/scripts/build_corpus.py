"""Build the service's token file from local text files: by default the Python standard library sources.

uv run python assignment3-scaling/scripts/build_corpus.py --out_dir runs/corpus
uv run python assignment3-scaling/scripts/build_corpus.py --sources my_texts/ --pattern '*.txt' --out_dir corpus
"""

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.corpus import CorpusConfig, build_corpus


def main() -> None:
    print(f"wrote {build_corpus(parse_config(CorpusConfig, description=__doc__))}")


if __name__ == "__main__":
    main()
