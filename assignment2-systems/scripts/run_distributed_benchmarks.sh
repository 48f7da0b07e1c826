#!/usr/bin/env bash
# Issue 8 in one command: correctness checks, collective sweep, DDP/FSDP step times and memory on NPROC GPUs.
#
#   NPROC=2 OUT=$OUT bash assignment2-systems/scripts/run_distributed_benchmarks.sh          # from the repo root
#   NPROC=2 SIZES="small xl" PRECISIONS=fp32 OUT=/tmp/d bash assignment2-systems/scripts/run_distributed_benchmarks.sh
#
# Uses `python3 -m torch.distributed.run` with PYTHONPATH pointing at the repo's sources (no install needed), NCCL
# when CUDA is present, gloo otherwise. NVLink multicast stays off (the scripts also force it in each rank).
set -euo pipefail
NPROC="${NPROC:-2}"
OUT="${OUT:-distributed_results}"
SIZES="${SIZES:-small medium large xl}"
PRECISIONS="${PRECISIONS:-fp32 bf16}"
MEMORY_SIZE="${MEMORY_SIZE:-xl}"
PYTHON="${PYTHON:-python3}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH="assignment1-basics/src:assignment2-systems/src${PYTHONPATH:+:$PYTHONPATH}"
run() { "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" "$@"; }
BENCH=assignment2-systems/benchmarks

run assignment2-systems/scripts/check_distributed_correctness.py --out_dir "$OUT/correctness"
run "$BENCH/bench_comm.py" --out_dir "$OUT/comm"
for precision in $PRECISIONS; do
  for size in $SIZES; do
    run "$BENCH/bench_ddp.py" --size "$size" --precision "$precision" --out_dir "$OUT/ddp"
  done
  run "$BENCH/bench_memory_sharding.py" --size "$MEMORY_SIZE" --precision "$precision" \
    --setups bucketed-25 zero1 fsdp torch-ddp torch-fsdp --out_dir "$OUT/memory"
done
