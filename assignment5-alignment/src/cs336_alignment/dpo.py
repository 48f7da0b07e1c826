"""Direct Preference Optimisation: the per-instance loss on two LMs, and Anthropic HH preference pairs."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cs336_alignment.log_probs import sequence_log_prob
from cs336_alignment.losses import dpo_loss
from cs336_alignment.prompts import format_alpaca, load_prompt
from cs336_alignment.tokenization import encode_texts, eos_token_id

HH_FILES = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
HH_URL = "https://huggingface.co/datasets/Anthropic/hh-rlhf/resolve/main/{}/train.jsonl.gz"


@dataclass(frozen=True)
class PreferencePair:
    instruction: str
    chosen: str
    rejected: str
    source: str


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def preference_token_ids(tokenizer: Any, prompt: str, response: str, template: str | None = None) -> list[int]:
    """Token ids of the Alpaca-formatted prompt and response followed by the EOS token."""
    ids = encode_texts(tokenizer, [format_alpaca(prompt, response, template)])[0]
    eos = eos_token_id(tokenizer)
    return ids + ([eos] if eos is not None else [])


def per_instance_dpo_loss(
    lm: torch.nn.Module,
    lm_ref: torch.nn.Module,
    tokenizer: Any,
    beta: float,
    prompt: str,
    response_chosen: str,
    response_rejected: str,
) -> Tensor:
    """DPO loss of one preference pair, on ``lm``'s device (the reference model may live elsewhere).

    Sequence log-probabilities are over the whole formatted text: the prompt's share cancels in the
    difference of chosen and rejected under the same model, so no prompt masking is needed.
    """
    template = load_prompt("alpaca_sft")
    chosen = preference_token_ids(tokenizer, prompt, response_chosen, template)
    rejected = preference_token_ids(tokenizer, prompt, response_rejected, template)
    device = _model_device(lm)
    ref_device = _model_device(lm_ref)
    with torch.no_grad():
        ref_chosen = sequence_log_prob(lm_ref, chosen, ref_device).to(device)
        ref_rejected = sequence_log_prob(lm_ref, rejected, ref_device).to(device)
    return dpo_loss(
        sequence_log_prob(lm, chosen, device), sequence_log_prob(lm, rejected, device), ref_chosen, ref_rejected, beta
    )


def _split_hh_conversation(text: str) -> tuple[str, str] | None:
    """``(first human message, assistant reply)`` of a single-turn HH conversation, else None."""
    turns = text.split("\n\nHuman: ")
    if len(turns) != 2 or "\n\nAssistant: " not in turns[1]:
        return None
    human, assistant = turns[1].split("\n\nAssistant: ", 1)
    if "\n\nAssistant: " in assistant:
        return None
    return human.strip(), assistant.strip()


def fetch_hh_pairs() -> list[PreferencePair]:
    """The HH pairs from the shared data folder (``data/hh-rlhf/<name>/train.jsonl.gz``) or downloaded from the
    hub into the cache; offline without a copy it raises ``SharedDataUnavailable`` naming the file and URL."""
    from cs336_basics.toolkit.data_paths import shared_path

    paths = [shared_path(f"data/hh-rlhf/{name}/train.jsonl.gz", url=HH_URL.format(name)) for name in HH_FILES]
    return load_hh_pairs(paths[0].parent.parent)


def load_preference_jsonl(path: str | os.PathLike) -> list[PreferencePair]:
    """Pairs from a local JSONL of ``{"instruction" (or "prompt"), "chosen", "rejected"}`` records."""
    from cs336_alignment.sft_data import read_jsonl

    pairs = []
    for number, record in enumerate(read_jsonl(path), 1):
        instruction = record.get("instruction", record.get("prompt"))
        if instruction is None or "chosen" not in record or "rejected" not in record:
            raise ValueError(f"{path}: record {number} needs 'instruction' (or 'prompt'), 'chosen' and 'rejected'")
        pairs.append(PreferencePair(instruction, record["chosen"], record["rejected"], str(path)))
    return pairs


def load_hh_pairs(directory: str | os.PathLike) -> list[PreferencePair]:
    """Single-turn pairs from the four HH training files in ``directory`` (``<name>.jsonl.gz`` or
    ``<name>/train.jsonl.gz``); multi-turn conversations are skipped."""
    directory = Path(directory)
    pairs = []
    for name in HH_FILES:
        candidates = [directory / f"{name}.jsonl.gz", directory / name / "train.jsonl.gz"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"Anthropic HH file {name} not found in {directory} (looked for {', '.join(map(str, candidates))}); "
                f"download it from {HH_URL.format(name)}"
            )
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                chosen = _split_hh_conversation(record["chosen"])
                rejected = _split_hh_conversation(record["rejected"])
                if chosen and rejected and chosen[0] == rejected[0]:
                    pairs.append(PreferencePair(chosen[0], chosen[1], rejected[1], name))
    return pairs
