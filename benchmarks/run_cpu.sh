#!/usr/bin/env bash
# Every CPU part of the benchmarks (1-6), one after the other, JSON into benchmarks/results/, then
# the figures table. Run it on a quiet machine: it takes about 30 minutes on 2 cores (the first
# run also writes the full-size fakes into benchmarks/results/cache/, several minutes more).
#
#   benchmarks/run_cpu.sh                 # the figures
#   benchmarks/run_cpu.sh --quick         # smoke run of every part (a minute or two)
#   NOTE="quiet machine" benchmarks/run_cpu.sh   # stored with each result
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
ARGS=("$@")
NOTE=${NOTE:-"run_cpu.sh"}
for part in bench_step bench_data bench_workflow bench_prepare bench_memory bench_gradients; do
    echo "== $part ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1 /proc/loadavg))"
    "$PYTHON" -m "benchmarks.$part" --note "$NOTE" "${ARGS[@]}"
done
"$PYTHON" -m benchmarks.report
