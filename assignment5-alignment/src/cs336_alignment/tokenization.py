"""Prompt/response tokenisation for training on responses only.

Works with Hugging Face tokenizers and with ``cs336_basics.tokenizer.Tokenizer`` (anything with
``encode``/``decode``); the helpers below hide the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added (batched through Rust for HF fast tokenizers)."""
    if callable(tokenizer) and hasattr(tokenizer, "pad_token_id"):
        return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    return [list(tokenizer.encode(text)) for text in texts]


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Text of token ids, special tokens kept (HF tokenizers) or as the tokenizer renders them (``cs336_basics``)."""
    if hasattr(tokenizer, "batch_decode"):
        return tokenizer.decode(list(ids), skip_special_tokens=False)
    return tokenizer.decode(list(ids))


def eos_token_id(tokenizer: Any) -> int | None:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None and hasattr(tokenizer, "special_token_ids"):
        eos = tokenizer.special_token_ids.get("<|endoftext|>")
    return eos


def eos_text(tokenizer: Any) -> str:
    """The EOS token as text, which the tokenizer encodes back to the EOS id ("" when it has none): appended to
    SFT targets so the policy learns to stop after its answer."""
    text = getattr(tokenizer, "eos_token", None)
    if text is None and "<|endoftext|>" in getattr(tokenizer, "special_token_ids", {}):
        text = "<|endoftext|>"
    return text or ""


def end_with_eos(text: str, tokenizer: Any) -> str:
    """``text`` ending with the EOS text exactly once (left as it is when it already ends so): a sampled response
    trained on as an SFT target must teach the policy to stop after it, as ``r1_zero_target``'s EOS does."""
    eos = eos_text(tokenizer)
    return text if text.endswith(eos) else text + eos


def vocab_size(tokenizer: Any) -> int:
    """Number of token ids, added special tokens included (HF ``len``, ``cs336_basics`` ``vocab``)."""
    return len(tokenizer) if hasattr(tokenizer, "__len__") else len(tokenizer.vocab)


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id (GPT-2 has no pad token), else 0; padded positions are masked."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = eos_token_id(tokenizer)
    return 0 if pad is None else int(pad)


def tokenize_prompt_and_output(
    prompt_strs: Sequence[str], output_strs: Sequence[str], tokenizer: Any
) -> dict[str, Tensor]:
    """Concatenate separately tokenised prompt and output, right-pad, and shift for next-token training.

    Returns ``input_ids`` (all but the last position), ``labels`` (all but the first) and
    ``response_mask`` (True where the label is an output token), each ``(batch, max_len - 1)``.
    """
    if len(prompt_strs) != len(output_strs):
        raise ValueError(f"{len(prompt_strs)} prompts but {len(output_strs)} outputs")
    return pack_prompt_and_output_ids(
        encode_texts(tokenizer, prompt_strs), encode_texts(tokenizer, output_strs), pad_token_id(tokenizer)
    )


def pack_prompt_and_output_ids(
    prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], pad: int
) -> dict[str, Tensor]:
    """``tokenize_prompt_and_output`` for token ids already in hand (e.g. the ids a sampler generated, which
    re-encoding the decoded text need not reproduce)."""
    lengths = [len(p) + len(o) for p, o in zip(prompts, outputs, strict=True)]
    max_len = max(lengths)
    ids = torch.full((len(prompts), max_len), pad, dtype=torch.long)
    is_output = torch.zeros((len(prompts), max_len), dtype=torch.bool)
    for row, (p, o) in enumerate(zip(prompts, outputs)):
        ids[row, : len(p) + len(o)] = torch.tensor(list(p) + list(o), dtype=torch.long)
        is_output[row, len(p) : len(p) + len(o)] = True
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "response_mask": is_output[:, 1:]}
