"""The whole of assignment 1 in a few minutes on a laptop CPU, offline: BPE → tokenise → train → sample.

1. write real English text (gensim's bundled Lee news + Wikipedia excerpt, :mod:`cs336_basics.english_corpus`);
2. train a byte-level BPE tokenizer on it and save GPT-2-format vocab/merges;
3. tokenise train and validation text into uint16 token files (in parallel);
4. train a small Transformer LM for a fixed wall-clock budget: a few timed steps first measure the step time,
   so the cosine schedule spans exactly the iterations that fit in the budget;
5. write the loss curve and print samples.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cs336_basics.bpe import save_vocab_merges, train_bpe
from cs336_basics.checkpoint import read_checkpoint
from cs336_basics.data import get_batch, load_tokens
from cs336_basics.demo_config import DemoConfig
from cs336_basics.english_corpus import END_OF_TEXT, write_english_corpus
from cs336_basics.generate import generate
from cs336_basics.model import TransformerLM
from cs336_basics.nn_utils import cross_entropy
from cs336_basics.optimizer import AdamW
from cs336_basics.tokenize_dataset import tokenize_to_memmap
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.train import train
from cs336_basics.train_config import TrainConfig

PROMPTS = ("The government said", "The city of", "In 1990, the")


def choose_threads_and_step_seconds(cfg: DemoConfig, tokens: np.ndarray) -> tuple[int, float]:
    """Time a few steps with one thread and with all cores; keep the faster and return (threads, seconds/step).

    On an idle machine more threads win; on a busy one, threads that spin-wait for each other can make every
    step several times slower than a single thread, so this is measured rather than assumed.
    """
    candidates = [cfg.threads] if cfg.threads else sorted({1, os.cpu_count() or 1})
    timings: dict[int, float] = {}
    for threads in candidates:
        torch.set_num_threads(threads)
        timings[threads] = estimate_step_seconds(cfg, tokens, give_up_after=4 * min(timings.values(), default=1e9))
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best, timings[best]


def estimate_step_seconds(cfg: DemoConfig, tokens: np.ndarray, steps: int = 2, give_up_after: float = 1e9) -> float:
    """Median wall time of one training step of the demo model on this machine (after one warm-up step).

    Returns infinity as soon as one step takes longer than ``give_up_after`` seconds (a clearly worse setting).
    """
    torch.manual_seed(cfg.seed)
    model = TransformerLM(cfg.model)
    optimizer = AdamW(model.parameters(), lr=cfg.max_lr)
    rng = np.random.default_rng(cfg.seed)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        x, y = get_batch(tokens, cfg.batch_size, cfg.model.context_length, "cpu", rng)
        loss = cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
        if times[-1] > give_up_after:
            return float("inf")
    return float(np.median(times[1:]))


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run every stage, printing what it does; return the paths written, the losses and the samples."""
    out = Path(cfg.out_dir)
    started = time.perf_counter()

    def stage(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    stage("writing the English corpus from gensim's bundled test data (Lee news + Wikipedia excerpt)")
    corpus = write_english_corpus(out / "corpus", include_wikipedia=cfg.include_wikipedia)
    megabytes = f"{corpus.train_bytes / 1e6:.2f} MB train, {corpus.valid_bytes / 1e6:.2f} MB valid"
    stage(f"{corpus.documents} documents: {megabytes}")

    vocab, merges = train_bpe(corpus.train, cfg.model.vocab_size, [END_OF_TEXT], progress=cfg.progress)
    save_vocab_merges(vocab, merges, out / "vocab.json", out / "merges.txt")
    longest = max((a + b for a, b in merges), key=len).decode("utf-8", errors="replace")
    stage(f"trained BPE: {len(vocab)} tokens, longest {longest!r}")

    tokenizer = Tokenizer(vocab, merges, [END_OF_TEXT])
    token_files = {}
    for split in ("train", "valid"):
        token_files[split] = out / f"{split}.bin"
        count = tokenize_to_memmap(getattr(corpus, split), tokenizer, token_files[split], progress=cfg.progress)
        stage(f"tokenised {split}: {count:,} tokens")

    threads, step_seconds = choose_threads_and_step_seconds(cfg, load_tokens(token_files["train"]))
    iterations = cfg.iterations or max(10, int(0.95 * cfg.train_seconds / step_seconds))  # 5% for validation
    stage(
        f"one step takes {1e3 * step_seconds:.0f} ms on {threads} thread(s): "
        f"training {iterations} steps in ~{cfg.train_seconds:.0f}s"
    )
    summary = train(
        TrainConfig(
            train_data=str(token_files["train"]),
            valid_data=str(token_files["valid"]),
            out_dir=str(out),
            model=cfg.model,
            batch_size=cfg.batch_size,
            max_iters=iterations,
            max_lr=cfg.max_lr,
            min_lr=cfg.min_lr,
            warmup_iters=max(1, iterations // 20),
            log_interval=max(1, iterations // 100),
            eval_interval=max(1, iterations // 6),
            eval_batches=8,
            checkpoint_interval=iterations,
            device="cpu",
            seed=cfg.seed,
            max_seconds=None if cfg.iterations else 1.15 * cfg.train_seconds,  # a hard stop if the machine is busier
            progress=cfg.progress,
        )
    )
    stage(f"trained {summary['iterations']} steps: val loss {summary['val_loss']:.3f}; plot {summary['loss_curve']}")

    samples = sample(cfg, Path(summary["checkpoint"]), tokenizer)
    for prompt, text in samples:
        print(f"\n>>> {prompt}{text}")
    stage(f"done; everything is in {out}/")
    return {**summary, "samples": samples, "vocab": str(out / "vocab.json"), "merges": str(out / "merges.txt")}


def sample(cfg: DemoConfig, checkpoint: Path, tokenizer: Tokenizer) -> list[tuple[str, str]]:
    """Continue each prompt with nucleus sampling, stopping at ``<|endoftext|>``."""
    model = TransformerLM(cfg.model)
    model.load_state_dict(read_checkpoint(checkpoint)["model"])
    generator = torch.Generator().manual_seed(cfg.seed)
    eos = tokenizer.special_token_ids[END_OF_TEXT]
    results = []
    for prompt in PROMPTS:
        ids = generate(
            model, tokenizer.encode(prompt), cfg.samples_max_tokens, cfg.temperature, cfg.top_p, eos, "cpu", generator
        )
        results.append((prompt, tokenizer.decode(ids)))
    return results
