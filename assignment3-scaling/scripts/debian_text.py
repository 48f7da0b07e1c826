"""Collect deduplicated English prose from Debian documentation packages, one text file per document.

    uv run python assignment3-scaling/scripts/debian_text.py --debs_dir debs --out_dir runs/english_text
    uv run python assignment3-scaling/scripts/build_corpus.py --sources runs/english_text --pattern '*.txt' \\
        --vocab_size 256 --max_tokens 400000000 --out_dir runs/english_bytes
"""

import json

from cs336_basics.toolkit.cli import parse_config
from cs336_scaling.debian_text import DebianTextConfig, build_debian_text


def main() -> None:
    print(json.dumps(build_debian_text(parse_config(DebianTextConfig, description=__doc__)), indent=2))


if __name__ == "__main__":
    main()
