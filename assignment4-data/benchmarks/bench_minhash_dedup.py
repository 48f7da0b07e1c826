"""MinHash + LSH near-duplicate removal, cs336_data vs datatrove, on the same documents in one run (one core each).

    uv run python assignment4-data/benchmarks/bench_minhash_dedup.py [--pages 2500] [--out_dir DIR]

Documents: text extracted from real HTML found offline (Debian docs, npm docs, Rust books; see offline_corpus.py)
and gensim's Wikipedia excerpt, plus planted near-duplicates: copies with random word edits at rates from 0.2% to
8%, so some copies are above the Jaccard threshold and some just below it. Ground truth is exact: the true Jaccard
of every pair's normalised word 5-gram sets (sparse matrix product), clustered at the threshold. A system should
remove all but one document of each true cluster. Both run single-process with 14 bands x 8 rows (datatrove's
default), 5-grams; cs336_data also verifies candidates with the true Jaccard (threshold 0.8).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import resource
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cs336_basics.toolkit.atomic import write_json_atomic
from cs336_basics.toolkit.cli import parse_config

sys.path.insert(0, str(Path(__file__).parent))
from cs336_data.dedup.minhash import MinHashConfig, MinHashDeduplicator  # noqa: E402
from cs336_data.dedup.normalize import word_ngrams  # noqa: E402
from cs336_data.extraction import extract_text_from_html_bytes  # noqa: E402
from cs336_data.quality_training import wikipedia_chunks  # noqa: E402
from offline_corpus import (  # noqa: E402
    DEFAULT_HTML_ROOTS,
    html_pages,
    patch_datatrove_word_tokenizer,
    patch_datatrove_xxhash,
)

EDIT_RATES = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08)


@dataclass(frozen=True)
class BenchMinHashConfig:
    """MinHash + LSH near-duplicate removal, cs336_data vs datatrove, on the same documents (one core each)."""

    pages: int = field(default=2500, metadata={"help": "HTML pages to take from the offline roots"})
    html_root: list[Path] = field(default_factory=list, metadata={"help": "extra folders of HTML files"})
    seed: int = field(default=0, metadata={"help": "seed of the planted near-duplicates"})
    bands: int = field(default=28, metadata={"help": "cs336_data LSH bands (datatrove: its default 14)"})
    rows: int = field(default=4, metadata={"help": "cs336_data rows per band (datatrove: its default 8)"})
    out_dir: Path = field(
        default=Path("assignment4-data/runs/bench_minhash_dedup"), metadata={"help": "folder for results.json"}
    )

    def __post_init__(self):
        if min(self.pages, self.bands, self.rows) < 1:
            raise ValueError("pages, bands and rows must be positive")


def base_documents(pages: int, roots: list[Path]) -> list[str]:
    texts = [extract_text_from_html_bytes(html) for _, html in html_pages(roots, pages)]
    texts += list(wikipedia_chunks())
    return [t for t in texts if len(t.split()) >= 50]


def edited_copy(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """Substitute, delete or insert words, each word edited with probability ``rate``."""
    out = []
    for word in text.split(" "):
        if rng.random() >= rate:
            out.append(word)
            continue
        op = rng.randrange(3)
        if op == 0:
            out.append(rng.choice(vocabulary))
        elif op == 2:
            out.extend([word, rng.choice(vocabulary)])
    return " ".join(out)


def plant_near_duplicates(base: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    vocabulary = sorted({w for t in base[:200] for w in t.split()})
    documents = list(base)
    for text in base:
        for _ in range(rng.choice((0, 0, 1, 2))):
            documents.append(edited_copy(text, rng.choice(EDIT_RATES), rng, vocabulary))
    rng.shuffle(documents)
    return documents


def true_clusters(documents: list[str], ngrams: int, threshold: float) -> np.ndarray:
    """Cluster label of every document: connected components of the graph of pairs with Jaccard >= threshold."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    columns: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(documents):
        for gram in word_ngrams(text, ngrams):
            rows.append(i)
            cols.append(columns.setdefault(gram, len(columns)))
    x = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(documents), len(columns)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    jaccard = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    hit = jaccard >= threshold
    graph = sparse.coo_matrix((np.ones(hit.sum()), (inter.row[hit], inter.col[hit])), shape=(len(documents),) * 2)
    return connected_components(graph, directed=False)[1]


def precision_recall(labels: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    """Correct removals: per true cluster, at most size - 1 of its removed documents."""
    sizes = np.bincount(labels)
    removed = np.bincount(labels, weights=~keep).astype(int)
    correct = np.minimum(removed, sizes - 1).sum()
    should = (sizes - 1).sum()
    return {
        "removed": int((~keep).sum()),
        "should_remove": int(should),
        "precision": float(correct / max((~keep).sum(), 1)),
        "recall": float(correct / max(should, 1)),
    }


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: throughput per core, robust to other load on the box."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_cs336(documents: list[str], bands: int, rows: int, shard_size: int = 1000) -> tuple[np.ndarray, float]:
    config = MinHashConfig(num_hashes=bands * rows, num_bands=bands, ngrams=5, jaccard_threshold=0.8)
    start = cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        dedup = MinHashDeduplicator(config, tmp)
        shards = range(0, len(documents), shard_size)
        for shard, first in enumerate(shards):
            dedup.add_shard(shard, documents[first : first + shard_size])
        keep = dedup.survivors(len(shards), documents.__getitem__)
    return keep, cpu_seconds() - start


def run_datatrove(documents: list[str]) -> tuple[np.ndarray, float]:
    patch_datatrove_word_tokenizer()
    patch_datatrove_xxhash()
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )

    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    kept_ids: list[str] = []

    def collect(data, rank=0, world_size=1):
        for document in data:
            kept_ids.append(document.id)
            yield document

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(documents)]
    start = cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        sigs, buckets, remove, logs = (f"{tmp}/{name}" for name in ("sigs", "buckets", "remove", "logs"))
        stages = [
            ([docs, MinhashDedupSignature(output_folder=sigs, config=config)], 1),
            ([MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=config)], config.num_buckets),
            ([MinhashDedupCluster(input_folder=buckets, output_folder=remove, config=config)], 1),
            ([docs, MinhashDedupFilter(input_folder=remove), collect], 1),
        ]
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):  # datatrove's per-stage log reports
            for i, (pipeline, tasks) in enumerate(stages):
                LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{logs}/{i}").run()
    elapsed = cpu_seconds() - start
    keep = np.zeros(len(documents), dtype=bool)
    keep[[int(i) for i in kept_ids]] = True
    return keep, elapsed


def main() -> None:
    args = parse_config(BenchMinHashConfig, description=__doc__)
    documents = plant_near_duplicates(base_documents(args.pages, args.html_root + DEFAULT_HTML_ROOTS), args.seed)
    labels = true_clusters(documents, ngrams=5, threshold=0.8)
    print(f"{len(documents)} documents, {len(documents) - labels.max() - 1} to remove (exact Jaccard >= 0.8)")
    results = {"documents": len(documents), "cpu": os.cpu_count(), "cs336_bands_x_rows": [args.bands, args.rows]}
    runners = (
        ("cs336_data", functools.partial(run_cs336, bands=args.bands, rows=args.rows)),
        ("datatrove", run_datatrove),
    )
    for name, runner in runners:
        keep, seconds = runner(documents)
        r = {"cpu_seconds": seconds, "docs_per_cpu_s": len(documents) / seconds, **precision_recall(labels, keep)}
        results[name] = r
        print(
            f"{name:>10}: {r['docs_per_cpu_s']:8.0f} docs/s per core  precision {r['precision']:.4f}  "
            f"recall {r['recall']:.4f}  ({r['removed']} removed, {seconds:.1f} CPU s)"
        )
    ratio = results["cs336_data"]["docs_per_cpu_s"] / results["datatrove"]["docs_per_cpu_s"]
    results["speedup_vs_datatrove"] = ratio
    print(f"cs336_data / datatrove throughput (one core each): {ratio:.2f}x")
    print(f"results in {write_json_atomic(args.out_dir / 'results.json', results)}")


if __name__ == "__main__":
    main()
