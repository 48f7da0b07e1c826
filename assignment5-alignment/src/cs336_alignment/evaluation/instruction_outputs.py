"""Greedy outputs for AlpacaEval or SimpleSafetyTests, in the JSON their judges read: what
``scripts/generate_instruction_outputs.py`` runs."""

from __future__ import annotations

from pathlib import Path

from cs336_basics.toolkit.atomic import write_json_atomic

from cs336_alignment.evaluation.configs import InstructionOutputsConfig
from cs336_alignment.instruction_eval import (
    alpaca_eval_records,
    instruction_prompt,
    load_alpaca_eval,
    load_simple_safety_tests,
    safety_records,
)
from cs336_alignment.run_setup import load_policy, policy_sampler
from cs336_alignment.sampling import SamplingParams


def generate_instruction_outputs(cfg: InstructionOutputsConfig) -> Path:
    """Write ``<benchmark>.json`` to ``cfg.out_dir`` and return its path."""
    if cfg.benchmark == "alpaca_eval":
        examples = load_alpaca_eval()
        instructions = [e["instruction"] for e in examples]
    else:
        examples = load_simple_safety_tests()
        instructions = [e["prompts_final"] for e in examples]
    if cfg.limit:
        examples, instructions = examples[: cfg.limit], instructions[: cfg.limit]
    policy, tokenizer = load_policy(cfg.policy)
    sampler = policy_sampler(cfg.policy, policy, tokenizer)
    params = SamplingParams(
        temperature=0.0, max_tokens=cfg.max_tokens, stop=("# Query:",), include_stop_str_in_output=False
    )
    outputs = [c.text.strip() for c in sampler.generate([instruction_prompt(i) for i in instructions], params)]
    generator = cfg.generator or cfg.policy.model
    records = (alpaca_eval_records if cfg.benchmark == "alpaca_eval" else safety_records)(examples, outputs, generator)
    path = write_json_atomic(Path(cfg.out_dir) / f"{cfg.benchmark}.json", records)
    print(f"{len(records)} outputs written to {path}")
    return path
