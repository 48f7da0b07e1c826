"""The manifests of the crawls that ``results/`` and WRITEUP.md were made from, and how a build compares with them.

A build is deterministic given its sources, but its Debian sources are whichever package versions apt fetched (or
the debs folder held): another version of one manual changes the pages and every number made from them. So
``results/crawl/<preset>.json`` keeps the ``manifest.json`` of each recorded build, and a build (new or reused) of
the same config key is checked against it. Other source versions, or the same sources with other file hashes, are
logged as warnings that name them, not raised: a user whose Debian carries other versions must still be able to
build a crawl, only not expect the recorded numbers from it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# assignment4-data/results/crawl of this checkout (the package is installed editable); absent, nothing is compared.
RECORDED_DIR = Path(__file__).resolve().parents[3] / "results" / "crawl"


def recorded_manifests(recorded_dir: Path | None = None) -> dict[Path, dict]:
    """Every recorded manifest, by its path."""
    folder = recorded_dir or RECORDED_DIR
    return {path: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def source_versions(manifest: dict) -> dict[str, str]:
    """``{package: version}`` from a manifest's ``sources`` (``name_version``; Debian names have no ``_``)."""
    return dict(source.split("_", 1) for source in manifest["sources"])


def recorded_versions(package: str, recorded_dir: Path | None = None) -> list[str]:
    """The versions of ``package`` that the recorded crawls were built from."""
    versions = {source_versions(m).get(package) for m in recorded_manifests(recorded_dir).values()}
    return sorted(versions - {None})


def check_against_recorded(manifest: dict, out_dir: Path, debs_dir: Path, recorded_dir: Path | None = None) -> None:
    """Warn if ``manifest`` (the build in ``out_dir``) differs from the recorded manifest of its config key.

    Different source versions are named with the way to fetch the recorded ones; with the same sources, the files
    whose SHA-256 differs are named (the build should then be byte-identical). No recorded manifest: silent."""
    recorded = {m["config_key"]: (path, m) for path, m in recorded_manifests(recorded_dir).items()}
    if manifest["config_key"] not in recorded:
        return
    path, expected = recorded[manifest["config_key"]]
    built, wanted = source_versions(manifest), source_versions(expected)
    differing = [name for name in wanted if built.get(name) != wanted[name]]  # same key: the same packages
    if differing:
        lines = [f"  {name}: built {built.get(name)}, recorded {wanted[name]}" for name in differing]
        if manifest["pages"] != expected["pages"]:
            lines.append(f"  pages: built {manifest['pages']:,}, recorded {expected['pages']:,}")
        fetch = " ".join(f"{name}={wanted[name]}" for name in differing)
        logger.warning(
            "The crawl in %s was built from other Debian package versions than the recorded crawl %s, which "
            "results/ and WRITEUP.md's numbers come from:\n%s\nIts pages, and every number made from them, may differ "
            "from the recorded ones. To build the recorded crawl, delete the built versions' .debs from %s and put the "
            "recorded ones there (`apt-get download %s` in that folder; `apt-get update` first if apt does not know "
            "a version, and the Debian archive may no longer carry it), then delete %s (a finished build is reused) "
            "and build again.",
            out_dir,
            path,
            "\n".join(lines),
            debs_dir,
            fetch,
            out_dir,
        )
        return
    files, wanted_files = manifest["files"], expected["files"]
    changed = sorted(name for name in files.keys() | wanted_files.keys() if files.get(name) != wanted_files.get(name))
    if changed:
        logger.warning(
            "The crawl in %s was built from the recorded Debian package versions but is not byte-identical to the "
            "recorded crawl %s; files that differ: %s. Its other inputs (the SpamAssassin corpus, the insults data, "
            "gensim's excerpts, resiliparse's text extraction) are not recorded and one of them differs here, or the "
            "build is no longer deterministic; numbers made from this crawl may differ from results/ and WRITEUP.md.",
            out_dir,
            path,
            ", ".join(changed),
        )
