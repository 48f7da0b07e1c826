#!/bin/bash
# Issue 17's GPU measurements as named parts, for one GPU call: each part runs under min(its cap, the seconds left
# before END), with the GPU's clock and power logged every 250 ms and summarised per part at the end.
#
# Run from the repository root on a GPU machine with torch and Triton (no install of this workspace needed):
#   PARTS="pytest_flash train_eager train_compiled" END=540 RESULTS=/tmp/a2 \
#       bash assignment2-systems/benchmarks/gpu_parts.sh
# RESULTS gets one log (and folder) per part, parts.txt (each part's start, end and exit status), gpu.txt
# (nvidia-smi), gpu_clocks.csv and clock_summary.md (gpu_clock_summary.py). Parts, with their caps in seconds:
#   pytest_flash (300)       the five flash attention test files (pointer, compile, TMA, Gluon forward, backward)
#   leaderboard (150)        bench_flash_leaderboard.py at batch 16, 16384 then 1024/2048/4096: ours eager and
#                            compiled, SDPA flash and cuDNN, the default kernels
#   leaderboard_best (130)   the same, eager only, with CS336_FLASH_GLUON=forward CS336_FLASH_TMA=atomic_dq
#   leaderboard_gluon (130)  the same, eager only, with CS336_FLASH_GLUON=both (the Gluon forward and backward)
#   train_eager (150)        bench_attention_backends.py, small model at 1024 and 4096, sdpa / sdpa_flash /
#                            flash_triton, eager, 60 steps in 6 interleaved rounds, kernel profiles after
#   train_compiled (360)     the same under torch.compile
#   train_gluon (300)        sdpa and flash_triton with CS336_FLASH_GLUON=backward at 1024 and 4096, eager then
#                            compiled, 60 steps in 6 interleaved rounds each
#   probe_gluon (60)         probe_gluon_forward.py, the library's default Gluon forward against cuDNN and Triton
#   checkpointing_fp32 (240) bench_checkpointing.py on the 2.7B at 4 x 2048 in fp32: every block, 2-block segments
#                            and sub-layers checkpointed (gradient_checkpointing (b))
#   attention_fp32 (240)     bench_attention.py's pytorch_attention sweep in float32 (batch 8, 256-16384 tokens, naive
#                            and compiled naive), the dtype the H100 sweep left out
#   model_10b (300)          bench_model.py on the 2026 table's 10B, fp32 and bf16: forward, forward+backward and the
#                            training step at batch 4 x 512 (cells that do not fit one GPU are OOM rows), then
#                            forward+backward at batch 1
#   probe_gluon_model (120)  Gluon configs at the small model's training shapes (batch 16 x 12 heads at 1024, 4 x 12
#                            at 4096, the model's layout) against cuDNN and the default pointer forward
set -u
START=$(date +%s)
END=${END:-540}
RESULTS=${RESULTS:-/tmp/a2}
mkdir -p "$RESULTS"
export PYTHONPATH=$PWD/assignment1-basics/src:$PWD/assignment2-systems/src PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor_$START}
B=$PWD/assignment2-systems/benchmarks
LEADERBOARD="python3 $B/bench_flash_leaderboard.py --batch 16 --seq_len 16384 --rep_ms 300 --warmup_ms 50 --host_calls 5"
TRAIN="python3 $B/bench_attention_backends.py --size small --contexts 1024 4096 --backends sdpa sdpa_flash flash_triton"
TRAIN="$TRAIN --steps 60 --rounds 6"

nvidia-smi > "$RESULTS/gpu.txt" 2>&1
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv -lms 250 > "$RESULTS/gpu_clocks.csv" 2>/dev/null &
CLOCK_LOG=$!

part() {  # name, cap in seconds, command
    local name=$1 cap=$2 command=$3
    local left=$((END - ($(date +%s) - START)))
    ((left < cap)) && cap=$left
    if ((cap < 10)); then
        echo "$name skipped (no time left)" >> "$RESULTS/parts.txt"
        return
    fi
    echo "$name start $(date -u '+%Y/%m/%d %H:%M:%S.%3N')" >> "$RESULTS/parts.txt"
    timeout "$cap" bash -c "$command" > "$RESULTS/$name.log" 2>&1
    local status=$?
    echo "$name end $(date -u '+%Y/%m/%d %H:%M:%S.%3N') rc $status" >> "$RESULTS/parts.txt"
}

for name in ${PARTS:?name the parts to run, e.g. PARTS=\"train_eager train_compiled\"}; do
    case $name in
        pytest_flash) part "$name" 300 "cd assignment2-systems && python3 -m pytest -v -rs -p no:cacheprovider \
            tests/test_flash_attention_triton.py tests/test_flash_attention_triton_compile.py \
            tests/test_flash_attention_triton_tma.py tests/test_flash_attention_gluon.py \
            tests/test_flash_attention_gluon_backward.py" ;;
        leaderboard) part "$name" 150 "$LEADERBOARD --impls ours_eager ours_compiled sdpa_flash sdpa_cudnn \
            --out_dir $RESULTS/$name" ;;
        leaderboard_best) part "$name" 130 "CS336_FLASH_GLUON=forward CS336_FLASH_TMA=atomic_dq $LEADERBOARD \
            --impls ours_eager sdpa_flash sdpa_cudnn --out_dir $RESULTS/$name" ;;
        leaderboard_gluon) part "$name" 130 "CS336_FLASH_GLUON=both $LEADERBOARD \
            --impls ours_eager sdpa_flash sdpa_cudnn --out_dir $RESULTS/$name" ;;
        train_eager) part "$name" 150 "$TRAIN --compile off --out_dir $RESULTS/$name" ;;
        train_gluon) part "$name" 300 "for mode in off on; do CS336_FLASH_GLUON=backward python3 \
            $B/bench_attention_backends.py --size small --contexts 1024 4096 --backends sdpa flash_triton \
            --steps 60 --rounds 6 --compile \$mode --out_dir $RESULTS/$name/compile_\$mode; done" ;;
        train_compiled) part "$name" 360 "$TRAIN --compile on --out_dir $RESULTS/$name" ;;
        checkpointing_fp32) part "$name" 240 "python3 $B/bench_checkpointing.py --precision fp32 \
            --policies every two_block_segments sublayers --out_dir $RESULTS/$name" ;;
        attention_fp32) part "$name" 240 "python3 $B/bench_attention.py --batch 8 --seq_lens 256 1024 4096 8192 \
            16384 --dtypes float32 --impls naive naive_compiled --warmup_ms 10 --rep_ms 30 --out_dir $RESULTS/$name" ;;
        model_10b) part "$name" 300 "python3 $B/bench_model.py --sizes 10B --precisions fp32 bf16 --warmup 5 \
            --modes forward forward_backward train_step --out_dir $RESULTS/$name/batch4 && python3 $B/bench_model.py \
            --sizes 10B --precisions fp32 bf16 --warmup 5 --modes forward_backward --batch_size 1 \
            --out_dir $RESULTS/$name/batch1" ;;
        probe_gluon) part "$name" 60 "python3 $B/probe_gluon_forward.py --variants 256,64,2,split_sync,16,96 \
            --out_dir $RESULTS/$name" ;;
        probe_gluon_model) part "$name" 120 "for shape in '16 1024' '4 4096'; do set -- \$shape; \
            python3 $B/probe_gluon_forward.py --batch \$1 --heads 12 --seq_len \$2 --layout model \
            --baseline_tma none --out_dir $RESULTS/$name/n\$2 --variants 256,64,2,split_sync,16,96 \
            128,64,2,split_sync,8,80 128,64,3,split_sync,8,80 128,128,2,split_async,8,168 64,64,2,sync,4,80; done" ;;
        *) echo "unknown part $name" | tee -a "$RESULTS/parts.txt" ;;
    esac
done
kill "$CLOCK_LOG" 2>/dev/null
python3 "$B/gpu_clock_summary.py" --clock_log "$RESULTS/gpu_clocks.csv" --parts "$RESULTS/parts.txt" \
    --out_dir "$RESULTS" > /dev/null 2>&1
cat "$RESULTS/parts.txt"
