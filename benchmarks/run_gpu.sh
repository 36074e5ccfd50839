#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one command of under 5 minutes on one H100/H200 (bf16
# autocast, channels_last, data on the device: the trainer's CUDA defaults):
#   1. the CUDA tests (`pytest -m cuda`; pytest from $PYLIBS or the environment, else reported
#      as not run),
#   2. the training step (sdnet baseline/stochastic vs the conventional reference),
#   3. the data pipeline (on-device augmentation vs DataLoader),
#   4. real `sdnet train` runs: ResNet-110 constant and stochastic depth, 2 epochs of 45k images
#      (epoch time, eval time, peak memory, 500-epoch projection),
#   5. ResNet-50 (bottleneck) for 300 steps through the real trainer,
#   6. a torch.profiler table of the ResNet-110 step (is it launch-bound?).
# Several runs per GPU (k = 1, 2, 4 concurrent trainers) is a separate call of about 4 minutes:
#
#   benchmarks/run_gpu.sh                # parts 1-6; JSON + summary.txt into $OUT if set, else benchmarks/results
#   benchmarks/run_gpu.sh concurrent     # aggregate throughput of k = 1, 2, 4 ResNet-110 trainers
#   benchmarks/run_gpu.sh imagenet       # ImageNet: the JPEG loader alone (nvJPEG) vs torchvision's
#                                        # DataLoader, and ResNet-152 steps (bf16, fp32; constant and
#                                        # stochastic depth), about 4 minutes. Targets: loader >= 4,000
#                                        # images/s on one H100; ResNet-152 >= 1,500 images/s constant,
#                                        # >= 1.3x that stochastic
#   benchmarks/run_gpu.sh --quick        # smoke run (also works with DEVICE=cpu, for testing the script)
#
# Works without `pip install`: sdnet and the benchmarks are imported from the checkout
# (PYTHONPATH), so a machine with PyTorch, torchvision, numpy, pillow, pyyaml and tabulate
# suffices. Each part has its own time limit, and a failing part does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# PYLIBS: pure-Python wheels unpacked into a folder (pytest and its dependencies) for machines
# without pytest; see benchmarks/README.md ("On a lent GPU machine").
PYLIBS=${PYLIBS:-$ROOT/benchmarks/pylibs}
export PYTHONPATH="$ROOT/src:$ROOT${PYLIBS:+:$PYLIBS}${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DEVICE=${DEVICE:-cuda}
RESULTS=${OUT:-$ROOT/benchmarks/results}
mkdir -p "$RESULTS"
SUMMARY=$RESULTS/summary.txt
QUICK=()
STEP=(--steps 20 --repeats 5)
DATA=(--batches 80 --repeats 5)
MODE=main
STEPS50=300
SCALE=1  # --quick on a CPU is slower than the real thing on a GPU: 4x the limits
for arg in "$@"; do
    case $arg in
        --quick) QUICK=(--quick); STEP=(--steps 1 --repeats 2); DATA=(); STEPS50=2; SCALE=4 ;;
        concurrent) MODE=concurrent ;;
        imagenet) MODE=imagenet ;;
        *) echo "usage: $0 [--quick] [concurrent|imagenet]" >&2; exit 2 ;;
    esac
done
NOTE=${NOTE:-"run_gpu.sh"}
status=0

part() {  # part NAME LIMIT_S ARGS...: run one bench, its table into the summary
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    echo "== $name ($(date -u +%H:%M:%S) UTC)" | tee -a "$SUMMARY"
    if ! timeout "$limit" "$PYTHON" -m "benchmarks.$name" --device "$DEVICE" --out "$RESULTS" \
            --note "$NOTE" "${QUICK[@]}" "$@" 2>&1 | tee -a "$SUMMARY"; then
        echo "!! $name failed or ran past ${limit}s" | tee -a "$SUMMARY"
        status=1
    fi
}

: > "$SUMMARY"
{
    echo "sdnet GPU benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu,utilization.gpu --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c 'import torch, torchvision, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} 2>&1 | tee -a "$SUMMARY"

# Parts that are not benchmark modules: a command line run under a time limit.
command_part() {  # command_part NAME LIMIT_S COMMAND...
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    echo "== $name ($(date -u +%H:%M:%S) UTC)" | tee -a "$SUMMARY"
    if ! timeout "$limit" "$@" 2>&1 | tee -a "$SUMMARY"; then
        echo "!! $name failed or ran past ${limit}s" | tee -a "$SUMMARY"
        status=1
    fi
}

cuda_tests() {  # the tests marked `cuda` (they skip without a GPU)
    if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
        echo "== cuda_tests: pytest is not importable here (set PYLIBS): CUDA tests NOT run" \
            | tee -a "$SUMMARY"
        status=1
        return
    fi
    command_part cuda_tests 45 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests
}

resnet50_steps() {  # the bottleneck ResNet-50 through the real trainer for $STEPS50 steps
    local quick=0 data out
    [ ${#QUICK[@]} -gt 0 ] && quick=1
    data=$("$PYTHON" -c 'import sys; from pathlib import Path; from benchmarks.bench_memory import prepared_folder; print(prepared_folder(Path(sys.argv[1]), sys.argv[2] == "1"))' \
        "$RESULTS/cache" "$quick") || { status=1; return; }
    out=$(mktemp -d)
    command_part resnet50_steps 35 "$PYTHON" -m sdnet train --data "$data" --dataset cifar10 \
        --depth 50 --survival linear --epochs 1 --limit-train $((STEPS50 * 128)) \
        --device "$DEVICE" --out "$out" --restart
    [ -f "$out/summary.json" ] && tee -a "$SUMMARY" < "$out/summary.json" | grep -E \
        '"(device|peak_memory_mb|train_seconds|parameters)"'
    rm -rf "$out"
}

if [ "$MODE" = concurrent ]; then
    # k trainers side by side on one GPU (separate processes, as Snakemake starts them)
    part bench_concurrent 280
elif [ "$MODE" = imagenet ]; then
    # the loader alone (20 batches of 128 per sample) vs DataLoader with the node's cores, then
    # ResNet-152 training steps (batch 128, channels_last) bf16 and float32
    part bench_imagenet 120 --parts loader
    part bench_imagenet 150 --parts model
else
    # 1: CUDA tests
    cuda_tests
    # 2: training step, sdnet baseline/stochastic vs the conventional reference (DataLoader, 2 workers)
    part bench_step 60 "${STEP[@]}"
    # 3: data pipeline alone: on-device augmentation vs torchvision DataLoader (0 and 2 workers)
    part bench_data 40 "${DATA[@]}"
    # 4: real `sdnet train` runs, ResNet-110 baseline and stochastic, 2 epochs of 45k
    part bench_memory 100 --mode epochs --epochs 2
    # 5: the bottleneck ResNet-50 through the real trainer
    resnet50_steps
    # 6: where a ResNet-110 step spends its time (torch.profiler), for when a target is missed
    part profile_step 20 --depth 110 --steps 10
fi

echo "== done ($(date -u +%H:%M:%S) UTC), status $status" | tee -a "$SUMMARY"
exit $status
