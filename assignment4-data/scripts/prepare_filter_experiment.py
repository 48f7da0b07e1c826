"""Token files for the filter-versus-raw experiment: the raw crawl's text, its filtered outputs, clean held-out text.

    uv run python assignment4-data/scripts/prepare_filter_experiment.py          # ~15 min on 2 cores, cached

Steps (each reused when its output exists): build the sample crawl (``build_sample_crawl.py``); run the pipeline on
its WARC shards twice, with the default filters and with the quality classifier off (``--min-quality 0``), logging
every decision; write the corpora as text (documents separated by ``<|endoftext|>``):

* ``raw``: the extracted text of every page (the pipeline's ``extract`` step, nothing filtered);
* ``filtered``: the default pipeline's output (language, Gopher, quality, NSFW, toxic, PII, both dedups);
* ``filtered_no_quality``: the same without the quality classifier;
* ``heldout_docs`` / ``heldout_articles``: the crawl's held-out documentation and article pages (never crawled;
  lines that occur in the crawl removed).

The tokenizer is a byte-level BPE (8,192 ids) trained on the raw corpus: the text a practitioner has before
filtering, of which each filtered corpus is a subset; no held-out text shapes it. Out: ``<out>/data/<name>.bin``
(uint16), the tokenizer, ``meta.json`` (documents, characters and tokens per corpus). The GPU run needs only
``<out>/data`` (``scripts/filter_vs_raw.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cs336_basics.bpe import train_bpe
from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.toolkit.atomic import write_text_atomic
from cs336_basics.vocab_files import save_vocab_merges
from cs336_data.crawl.build import PRESETS, CrawlConfig, build_crawl
from cs336_data.extraction import extract_text_from_html_bytes
from cs336_data.pipeline.document import Document
from cs336_data.pipeline.executors import LocalExecutor, available_cpus
from cs336_data.pipeline.run import PipelineConfig, run_pipeline
from cs336_data.warc_io import iter_warc_responses

EOS = "<|endoftext|>"
PIPELINES = {"filtered": {}, "filtered_no_quality": {"min_quality": 0.0}}


def write_corpus(path: Path, texts: list[str]) -> dict[str, int]:
    """Documents joined by EOS, written atomically; returns documents and characters."""
    write_text_atomic(path, "".join(t + EOS for t in texts))
    return {"documents": len(texts), "characters": sum(map(len, texts))}


def raw_texts(shards: list[Path]) -> list[str]:
    """Every page's extracted text (empty extractions dropped, as the pipeline's extract step does)."""
    texts = []
    for shard in shards:
        for page in iter_warc_responses(shard):
            text = extract_text_from_html_bytes(page.body) or ""
            if text.strip():
                texts.append(text)
    return texts


def pipeline_texts(shards: list[Path], out: Path, settings: dict, workers: int) -> list[str]:
    config = PipelineConfig(inputs=shards, output_dir=out, log_decisions=True, **settings)
    run_pipeline(config, LocalExecutor(workers=workers))
    return [Document.from_json(line).text for path in sorted((out / "final").glob("*.jsonl")) for line in jsonl(path)]


def jsonl(path: Path) -> list[str]:
    """Lines of a JSONL file, split on newlines only (``str.splitlines`` also splits inside strings at U+2028)."""
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crawl", type=Path, default=Path("assignment4-data/runs/crawl"))
    parser.add_argument("--out", type=Path, default=Path("assignment4-data/runs/filter_vs_raw"))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full", help="crawl size (small: a quick check)")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--workers", type=int, default=available_cpus())
    args = parser.parse_args()
    build_crawl(CrawlConfig(out_dir=args.crawl, **PRESETS[args.preset]))
    shards = sorted(args.crawl.glob("CC-SAMPLE-*.warc.gz"))
    text_dir, data_dir = args.out / "text", args.out / "data"
    text_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)

    corpora: dict[str, dict] = {}
    if not (text_dir / "raw.txt").exists():
        write_corpus(text_dir / "raw.txt", raw_texts(shards))
    for name, settings in PIPELINES.items():
        if not (text_dir / f"{name}.txt").exists():
            texts = pipeline_texts(shards, args.out / f"pipeline_{name}", settings, args.workers)
            write_corpus(text_dir / f"{name}.txt", texts)
    heldout = [json.loads(line) for line in jsonl(args.crawl / "heldout.jsonl")]
    for name, kind in (("heldout_docs", "documentation"), ("heldout_articles", "article")):
        write_corpus(text_dir / f"{name}.txt", [d["text"] for d in heldout if d["kind"] == kind])

    vocab_path, merges_path = data_dir / "vocab.json", data_dir / "merges.txt"
    if not vocab_path.exists():
        vocab, merges = train_bpe(text_dir / "raw.txt", args.vocab_size, [EOS], num_workers=args.workers)
        save_vocab_merges(vocab, merges, vocab_path, merges_path)
    tokenizer = Tokenizer.from_files(vocab_path, merges_path, special_tokens=[EOS])
    for text_path in sorted(text_dir.glob("*.txt")):
        name = text_path.stem
        bin_path = data_dir / f"{name}.bin"
        if not bin_path.exists():
            tokenize_to_memmap(text_path, tokenizer, bin_path, num_workers=args.workers)
        text = text_path.read_text(encoding="utf-8")
        corpora[name] = {
            "documents": text.count(EOS),
            "characters": len(text) - len(EOS) * text.count(EOS),
            "tokens": bin_path.stat().st_size // 2,
        }
    meta = {"tokenizer": "byte-level BPE trained on raw.txt", "vocab_size": tokenizer.vocab_size, "corpora": corpora}
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    total = sum(p.stat().st_size for p in data_dir.iterdir())
    print(f"{data_dir}: {total / 2**20:.1f} MiB (carry this folder to the GPU machine)")


if __name__ == "__main__":
    main()
