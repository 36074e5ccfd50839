#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in ONE command that fits one try on a lent H100/H200 (a
# machine start of 1-3 min plus this within 15 min of device time): about 8 minutes typical, and
# never more than BUDGET_S (560 s, 9.3 min), since each part's limit is cut to what is left.
# The trainer's CUDA defaults throughout (bf16 autocast, channels_last, data on the device).
#
#   part            limit  what
#   cache             25 s  CIFAR-10-sized random data (45k/5k/10k), written OUTSIDE $OUT
#   cuda_tests        50 s  pytest -m cuda tests/cuda (no pandas/scipy needed)
#   bench_memory     110 s  real `sdnet train`: ResNet-110 constant + stochastic, 2 epochs of 45k
#   bench_step        60 s  the training step: sdnet baseline/stochastic vs the conventional recipe
#   bench_concurrent 140 s  k = 1, 2, 4 ResNet-110 trainers side by side on the one GPU
#   resnet50_steps    40 s  bottleneck ResNet-50, 300 steps through the real trainer
#   bench_data        45 s  on-device augmentation vs DataLoader
#   profile_step      35 s  torch.profiler table of the ResNet-110 step
#   bench_imagenet    40 s  ImageNet: the JPEG loader vs torchvision's, ResNet-152 steps (bf16, fp32)
#
#   benchmarks/run_gpu.sh              # the GPU call; results into $OUT if set, else benchmarks/results
#   benchmarks/run_gpu.sh --rehearse   # every part at toy size on the CPU, same $OUT layout (CI)
#
# What comes back from $OUT (at most 8 files of 16 MiB, 2 folders deep): summary.txt (written as
# it goes, appended to, with one "-- NAME: S s of L s limit" line per part), step-cuda.json,
# memory-cuda.json, concurrent-cuda.json, data-cuda.json, profile-cuda-resnet110-none.txt and,
# with that part, the ImageNet loader's JSON. The data cache goes to $CACHE (default under /tmp).
# The commit: SDNET_GIT_COMMIT (set it where git exists: the lent machine has no .git), else git.
#
# Works without `pip install`: sdnet and the benchmarks are imported from the checkout
# (PYTHONPATH); pytest from the environment or $PYLIBS (benchmarks/pylibs, `make gpu-pylibs`).
# A failing part does not stop the others; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYLIBS=${PYLIBS:-$ROOT/benchmarks/pylibs}
export PYTHONPATH="$ROOT/src:$ROOT${PYLIBS:+:$PYLIBS}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
REHEARSE=0
for arg in "$@"; do
    case $arg in
        --rehearse) REHEARSE=1 ;;
        *) echo "usage: $0 [--rehearse]" >&2; exit 2 ;;
    esac
done
RESULTS=${OUT:-$ROOT/benchmarks/results}
CACHE=${CACHE:-${TMPDIR:-/tmp}/sdnet-bench-cache}
mkdir -p "$RESULTS" "$CACHE"
SUMMARY=$RESULTS/summary.txt
BUDGET_S=${BUDGET_S:-560}
if [ "$REHEARSE" = 1 ]; then
    # Toy sizes on the CPU: every code path and the $OUT layout, not a figure. The limits are
    # the GPU's times REHEARSE_SCALE (2): a toy part fits in the GPU's own limit on a 2-core CPU
    # at load 2-8 (100 s in all), but not always at load 19 (the ResNet-50 part took 41 s).
    DEVICE=${DEVICE:-cpu}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # a shared CI machine
    SCALE=${REHEARSE_SCALE:-2}
    QUICK=(--quick)
    STEP=(--steps 1 --repeats 1 --depths 8 --batch-size 8)
    DATA=(--batches 2 --repeats 1 --batch-size 8 --data-size 256)
    MEMORY=(--mode epochs --epochs 1)
    CONCURRENT=(--k 1 2 4 --epochs 2 --threads-per-run 1)
    PROFILE=(--depth 8 --steps 1 --batch-size 8)
    STEPS50=2
    BATCH50=8
    NOTE=${NOTE:-"run_gpu.sh --rehearse"}
else
    DEVICE=${DEVICE:-cuda}
    SCALE=1
    QUICK=()
    STEP=(--steps 20 --repeats 5)
    DATA=(--batches 80 --repeats 5)
    MEMORY=(--mode epochs --epochs 2)
    # half the training split per epoch: 3 epochs (the first dropped) of k trainers fit 140 s
    CONCURRENT=(--k 1 2 4 --epochs 3 --limit-train 22500)
    PROFILE=(--depth 110 --steps 10)
    STEPS50=300
    BATCH50=128
    NOTE=${NOTE:-"run_gpu.sh"}
fi
export SDNET_GIT_COMMIT=${SDNET_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
START=$SECONDS
status=0

limit_for() {  # limit_for LIMIT_S: the part's limit, cut to what is left of the budget
    local limit=$(($1 * SCALE)) left=$((BUDGET_S * SCALE - (SECONDS - START)))
    [ "$left" -lt "$limit" ] && limit=$left
    echo "$limit"
}

run_limited() {  # run_limited NAME LIMIT_S COMMAND...: under its limit, output into the summary
    local name=$1 limit began rc
    limit=$(limit_for "$2")
    shift 2
    echo "== $name ($(date -u +%H:%M:%S) UTC, limit ${limit} s)" | tee -a "$SUMMARY"
    if [ "$limit" -lt 5 ]; then
        echo "!! $name skipped: the ${BUDGET_S} s budget is spent" | tee -a "$SUMMARY"
        status=1
        return 1
    fi
    began=$SECONDS
    timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$SUMMARY"
    rc=${PIPESTATUS[0]}
    echo "-- $name: $((SECONDS - began)) s of ${limit} s limit, exit $rc" | tee -a "$SUMMARY"
    if [ "$rc" -ne 0 ]; then
        echo "!! $name failed or ran past ${limit} s" | tee -a "$SUMMARY"
        status=1
        return 1
    fi
}

part() {  # part NAME LIMIT_S ARGS...: one benchmarks.NAME module
    local name=$1 limit=$2
    shift 2
    run_limited "$name" "$limit" "$PYTHON" -m "benchmarks.$name" --device "$DEVICE" \
        --out "$RESULTS" --note "$NOTE" "${QUICK[@]}" "$@"
}

{
    echo
    echo "#### sdnet GPU benchmarks$([ "$REHEARSE" = 1 ] && echo ' (REHEARSAL: toy sizes on the CPU)'), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $SDNET_GIT_COMMIT, budget ${BUDGET_S} s"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu,utilization.gpu --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c 'import torch, torchvision, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
    echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee -a "$SUMMARY"

quick_flag=0
[ "$REHEARSE" = 1 ] && quick_flag=1
# The random CIFAR-10-sized folder (bench_memory's), written once into $CACHE, never into $OUT.
run_limited cache 25 "$PYTHON" -c 'import sys; from pathlib import Path; from benchmarks.bench_memory import prepared_folder; print(prepared_folder(Path(sys.argv[1]), sys.argv[2] == "1"))' \
    "$CACHE" "$quick_flag"
DATA_DIR=$("$PYTHON" -c 'import sys; from benchmarks.bench_memory import cache_folder; print(cache_folder(sys.argv[1], sys.argv[2] == "1"))' "$CACHE" "$quick_flag")
[ -f "$DATA_DIR/meta.json" ] || DATA_DIR=""

cuda_tests() {  # the CUDA tests, from their own folder (they skip without a GPU)
    if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
        echo "!! cuda_tests: pytest is not importable here (set PYLIBS): CUDA tests NOT run" \
            | tee -a "$SUMMARY"
        status=1
        return
    fi
    run_limited cuda_tests 50 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/cuda
}

resnet50_steps() {  # the bottleneck ResNet-50 through the real trainer for $STEPS50 steps
    local out lr
    [ -n "$DATA_DIR" ] || { echo "!! resnet50_steps: no data folder" | tee -a "$SUMMARY"; status=1; return; }
    lr=$("$PYTHON" -c 'from benchmarks.bench_memory import BENCH_LR; print(BENCH_LR)')
    out=$(mktemp -d)
    run_limited resnet50_steps 40 "$PYTHON" -m sdnet train --data "$DATA_DIR" --dataset cifar10 \
        --depth 50 --survival linear --epochs 1 --batch-size "$BATCH50" --limit-train $((STEPS50 * BATCH50)) --lr "$lr" \
        --device "$DEVICE" --out "$out" --restart
    [ -f "$out/summary.json" ] && tee -a "$SUMMARY" < "$out/summary.json" | grep -E \
        '"(device|peak_memory_mb|train_seconds|parameters)"'
    rm -rf "$out"
}

# Most telling first: if the budget runs short, the last parts are the ones cut.
cuda_tests
part bench_memory 110 --cache "$CACHE" "${MEMORY[@]}"
part bench_step 60 "${STEP[@]}"
part bench_concurrent 140 --cache "$CACHE" "${CONCURRENT[@]}"
resnet50_steps
part bench_data 45 "${DATA[@]}"
part profile_step 35 "${PROFILE[@]}"
# ImageNet: the JPEG loader (nvJPEG) vs torchvision's DataLoader, and ResNet-152 steps (bf16 and
# float32, constant and stochastic), at sizes that fit the part's limit.
part bench_imagenet 40 --repeats 3 --steps 5 --batches 10

echo "== done ($(date -u +%H:%M:%S) UTC), $((SECONDS - START)) s in all, status $status" \
    | tee -a "$SUMMARY"
exit $status
