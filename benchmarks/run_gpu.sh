#!/usr/bin/env bash
# Parts 1, 2 and 5 of the benchmarks on CUDA, plus the ResNet-110 epoch time on CIFAR-10-sized
# data, in one command that takes under 5 minutes on one H100 (bf16 autocast, channels_last,
# data on the device: the trainer's CUDA defaults).
#
#   benchmarks/run_gpu.sh            # JSON + summary.txt into $OUT if set, else benchmarks/results
#   benchmarks/run_gpu.sh --quick    # smoke run (also works with DEVICE=cpu, for testing the script)
#
# Works without `pip install`: sdnet and the benchmarks are imported from the checkout
# (PYTHONPATH), so a machine with PyTorch, torchvision, numpy, pillow, pyyaml and tabulate
# suffices. Each part has its own time limit, and a failing part does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
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
if [ "${1:-}" = "--quick" ]; then QUICK=(--quick); STEP=(--steps 1 --repeats 2); DATA=(); fi
NOTE=${NOTE:-"run_gpu.sh"}
status=0

part() {  # part NAME LIMIT_S ARGS...: run one bench, its table into the summary
    local name=$1 limit=$2
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

# 1: training step, sdnet baseline/stochastic vs the conventional reference (DataLoader, 2 workers)
part bench_step 90 "${STEP[@]}"
# 2: data pipeline alone: on-device augmentation vs torchvision DataLoader (0 and 2 workers)
part bench_data 60 "${DATA[@]}"
# 5 + epoch time: real `sdnet train` runs, ResNet-110 baseline and stochastic, 2 epochs of 45k
part bench_memory 120 --mode epochs --epochs 2
# where a ResNet-110 step spends its time (torch.profiler), for when a target is missed
part profile_step 30 --depth 110 --steps 10

echo "== done ($(date -u +%H:%M:%S) UTC), status $status" | tee -a "$SUMMARY"
exit $status
