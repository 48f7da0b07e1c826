#!/usr/bin/env bash
# Run one A5 experiment on the GPU machine of the device tool with SmolLM2-135M-Instruct in bf16.
#   bash assignment5-alignment/scripts/gpu_run.sh EXPERIMENT [flags...]
# EXPERIMENT is a script of scripts/experiments (math_baseline, sft_experiment, expert_iteration_experiment,
# grpo_experiment) or bench_sampler. It first unpacks what scripts/gpu_carry.py packed (the call must carry
# assignment5-alignment/.carry/run and, until the model is ready, the next part folder), then runs the script
# with the converted model; flags given here come last, so they override those defaults (--policy.model /tmp/a5/sft).
# The weights stay float32 and bf16 autocast does the training compute: with bf16 weights AdamW's small updates are
# rounded away (WRITEUP "sft_experiment"). Rollouts and evaluations decode from the sampler's bf16 copy of the
# policy, refreshed after every update (--policy.sampler_dtype). Runs that only sample may pass --policy.dtype bfloat16.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${A5_GPU_DIR:-/tmp/a5}
export PYTHONPATH="$dest/site:$repo/assignment1-basics/src:$repo/assignment5-alignment/src"
export CS336_SHARED_DIR="$dest/shared" PYTHONUNBUFFERED=1
python3 "$here/gpu_carry.py" --action unpack --carry_dir "$repo/assignment5-alignment/.carry" --dest "$dest"
name=${1:?usage: gpu_run.sh EXPERIMENT [flags...]}
shift
script=$here/experiments/$name.py
[ "$name" = bench_sampler ] && script=$repo/assignment5-alignment/benchmarks/bench_sampler.py
exec python3 "$script" --policy.model "$dest/smollm2-135m-instruct" --policy.device cuda --policy.dtype float32 \
    --policy.sampler_dtype bfloat16 --policy.sampler_batch_size 256 "$@"
