"""Official-style correctness checks of every data-parallel wrapper against single-device training, under torchrun.

Meant for 2+ GPUs with NCCL (the tests cover gloo on the CPU); runs anywhere torchrun does. Each rank trains the
wrapped model on its slice of the batch and, on the same device, an unwrapped copy on the whole batch; after
every step the weights must agree:

- DDP (naive, flat, overlap, bucketed at 0.0001 / 0.0016 / 0.01 MB and unbounded) on the course's toy model and
  its tied-weight variant, 20 examples (the course fixtures when `CS336_SHARED_DIR` or `../shared` has them,
  seeded random data otherwise), MSE, SGD(lr=0.1), 5 steps, `torch.allclose` defaults;
- ZeRO-1 (`ShardedOptimizer` around `torch.optim.AdamW`) vs plain AdamW, 10 steps, relative error <= 1e-7;
- FSDP on the 2026 test model in fp32 (max difference reported, bitwise equality noted), fp16 and bf16 compute
  against the single-process mixed-precision reference, plus gradient shapes/dtypes and identical replicated
  gradients;
- every benchmark setup (ours, `torch.nn.parallel.DistributedDataParallel`, `fully_shard`) on a small
  Transformer LM, AdamW, 2 steps.

Prints a table, writes `correctness.json`/`.md` under `--out_dir`, exits 1 if any check fails.

    PYTHONPATH=assignment1-basics/src:assignment2-systems/src python3 -m torch.distributed.run --nproc-per-node 2 \\
        assignment2-systems/scripts/check_distributed_correctness.py --out_dir $OUT/correctness
"""

from __future__ import annotations

from cs336_basics.toolkit.cli import parse_config
from cs336_systems.distributed_checks_config import CorrectnessConfig


def main(config: CorrectnessConfig) -> bool:
    from cs336_systems.distributed_checks import check_distributed_correctness  # torch loads here, after parsing

    return check_distributed_correctness(config)


if __name__ == "__main__":
    raise SystemExit(0 if main(parse_config(CorrectnessConfig, description=__doc__)) else 1)
