"""Expert iteration on math problems with the r1_zero prompt, stop string and reward (the verifier), validated
after every round: what ``scripts/expert_iteration.py`` runs."""

from __future__ import annotations

from pathlib import Path

from cs336_basics.toolkit.metrics import read_metrics

from cs336_alignment.expert_iteration import run_expert_iteration
from cs336_alignment.math_eval import evaluate_math, prompt_style, r1_zero_sampling
from cs336_alignment.models import save_policy
from cs336_alignment.plots import plot_metrics
from cs336_alignment.run_setup import load_policy, load_problems, open_metrics, policy_sampler
from cs336_alignment.training.configs import ExpertIterationRunConfig


def train_expert_iteration_on_math(cfg: ExpertIterationRunConfig) -> Path:
    """Validate, run the rounds, and write ``metrics.jsonl``, ``expert_iteration.png`` and ``checkpoint/`` under
    the output folder, which it returns."""
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    train = load_problems(cfg.dataset, "train", 0, cfg.ei.ei_seed)
    val = load_problems(cfg.val_dataset, "test", cfg.val_size, cfg.ei.ei_seed)
    out_dir = Path(cfg.output.out_dir)

    def evaluate(step: int) -> dict[str, float]:
        sampler.sync_weights(policy)
        result = evaluate_math(sampler, val, r1_zero_sampling(cfg.ei.ei_max_tokens))
        return {f"val_{k}": v for k, v in result.metrics.items()}

    def checkpoint(step: int) -> None:
        save_policy(policy, tokenizer, out_dir / "checkpoint")

    with open_metrics(cfg.output, "expert_iteration", cfg) as logger:
        logger.log(step=0, **evaluate(0))
        run_expert_iteration(
            policy,
            tokenizer,
            sampler,
            train,
            prompt_style("r1_zero"),
            cfg.ei,
            cfg.sft,
            lambda r: logger.log(**r),
            evaluate,
            checkpoint,
        )
    records = read_metrics(out_dir / "metrics.jsonl")
    plot_metrics(records, ["loss", "entropy", "val_reward"], out_dir / "expert_iteration.png", "Expert iteration")
    print(f"metrics: {out_dir / 'metrics.jsonl'}  plot: {out_dir / 'expert_iteration.png'}")
    return out_dir
