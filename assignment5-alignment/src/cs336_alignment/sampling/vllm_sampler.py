"""vLLM as a generation backend, used when vLLM is installed and a GPU is present (imported lazily)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from unittest.mock import patch

import torch

from cs336_alignment.sampling.params import Completion, SamplingParams


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


class VLLMSampler:
    """A vLLM engine on its own device, refreshed from the trained policy with ``sync_weights``."""

    def __init__(self, model_id: str, device: str = "cuda", seed: int = 0, gpu_memory_utilization: float = 0.85):
        if not vllm_available():
            raise RuntimeError("vLLM needs `pip install vllm` and a CUDA GPU; use the kv_cache backend instead")
        from vllm import LLM
        from vllm.model_executor import set_random_seed

        set_random_seed(seed)
        # as in TRL: let vLLM sit on one chosen GPU beside a training process
        world_size_patch = patch("torch.distributed.get_world_size", return_value=1)
        profiling_patch = patch(
            "vllm.worker.worker.Worker._assert_memory_footprint_increased_during_profiling", return_value=None
        )
        with world_size_patch, profiling_patch:
            self.llm = LLM(
                model=model_id,
                device=device,
                dtype=torch.bfloat16,
                enable_prefix_caching=True,
                gpu_memory_utilization=gpu_memory_utilization,
            )

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        from vllm import SamplingParams as VLLMParams

        vllm_params = VLLMParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            min_tokens=params.min_tokens,
            stop=list(params.stop) or None,
            include_stop_str_in_output=params.include_stop_str_in_output,
            n=params.n,
            seed=params.seed,
        )
        outputs = self.llm.generate(list(prompts), vllm_params, use_tqdm=False)
        return [
            Completion(out.prompt, o.text, list(o.token_ids), "stop" if o.finish_reason == "stop" else "length")
            for out in outputs
            for o in out.outputs
        ]

    def sync_weights(self, policy: torch.nn.Module) -> None:
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        model.load_weights(policy.state_dict().items())
