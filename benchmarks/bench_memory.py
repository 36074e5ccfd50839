"""Part 5 (and the GPU epoch time): what a real `sdnet train` process costs on CIFAR-10-sized data.

The data: a prepared folder of CIFAR-10's size (45,000 train, 5,000 val, 10,000 test random
uint8 images), written once with sdnet's own split writers into benchmarks/results/cache/.
Every figure comes from a real `sdnet train` subprocess (the command users and the workflow run):

CPU (default):
- `steps`: ResNet-`--depth` (110) constant depth, the whole data set loaded, stopped after
  `--steps` logged training steps; peak RSS = the kernel's high-water mark (VmHWM) read just
  before stopping it. Activations peak inside every step, so a few steps show the peak.
- `run`: a complete short run (ResNet-20, `--limit-train` 1,280 images, 1 epoch) with
  evaluation on the full val/test splits, checkpoint and final files; peak RSS from wait4().

CUDA (`--device cuda`, or `--mode epochs` anywhere): ResNet-110 constant depth and stochastic depth, `--epochs` (2) full
epochs each on all 45,000 images; peak CUDA memory (the trainer's max_memory_allocated, in
summary.json), training seconds per epoch (metrics.csv) and evaluation seconds (log), and the
500-epoch projection from the last epoch.

    .venv/bin/python -m benchmarks.bench_memory
    .venv/bin/python -m benchmarks.bench_memory --device cuda
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

# Random labels: at the trainer's lr 0.1 a full-size ResNet-110 or ResNet-50 may diverge to NaN
# (the trainer then stops, and the part measures nothing); timing and memory do not depend on
# the lr, so every benchmark run of the real trainer uses this one.
BENCH_LR = 0.01
FULL_COUNTS = {"train": 45_000, "val": 5_000, "test": 10_000}
QUICK_COUNTS = {"train": 450, "val": 50, "test": 100}
STEP_LINE = re.compile(r"step (\d+)/(\d+)")
EVAL_LINE = re.compile(r"\(\+([0-9.]+)s eval\)")


def cache_folder(cache: Path, quick: bool) -> Path:
    """Where prepared_folder() keeps the data (complete once it holds meta.json)."""
    counts = QUICK_COUNTS if quick else FULL_COUNTS
    return Path(cache) / f"cifar10-sized-{counts['train']}"


def prepared_folder(cache: Path, quick: bool) -> Path:
    """A CIFAR-10-sized prepared folder (random images), written once with sdnet's writers."""
    from sdnet.data.prepared import build_meta, write_meta, write_split

    counts = QUICK_COUNTS if quick else FULL_COUNTS
    folder = cache_folder(cache, quick)
    if (folder / "meta.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    splits = {name: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                     rng.integers(0, 10, n).astype(np.int64)) for name, n in counts.items()}
    for name, (images, labels) in splits.items():
        write_split(folder / f"{name}.npz", images, labels)
    meta = build_meta("cifar10", splits, "benchmark-random", counts["val"], 0)
    write_meta(folder / "meta.json", meta)  # last: marks the folder complete
    return folder


def train_command(data: Path, out: Path, depth: int, survival: str, device: str,
                  *extra: str) -> list[str]:
    # `python -m sdnet` rather than the `sdnet` script: works from a checkout without install
    return [sys.executable, "-m", "sdnet", "train", "--data", str(data), "--dataset", "cifar10",
            "--depth", str(depth), "--survival", survival, "--device", device, "--out", str(out),
            "--restart", "--lr", str(BENCH_LR), *extra]


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size so far of a live process (VmHWM in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def peak_rss_after_steps(cmd: list[str], steps: int) -> dict[str, Any]:
    """Run `cmd` (with --log-every 1) until it logs `steps` steps; VmHWM then, then stop it."""
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--log-every", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    try:
        for line in proc.stderr:
            tail = (tail + [line])[-20:]
            match = STEP_LINE.search(line)
            if match and int(match.group(1)) >= steps:
                peak = vm_hwm_mib(proc.pid)
                return {"peak_rss_mib": peak, "steps": int(match.group(1)),
                        "steps_per_epoch": int(match.group(2)),
                        "seconds": time.perf_counter() - start}
        raise RuntimeError(f"{' '.join(cmd)} ended before step {steps}:\n{''.join(tail)}")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()


def run_to_end(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB from wait4, stderr) of a complete process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        log = err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, log


def read_epochs(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cpu_results(args: argparse.Namespace, data: Path, scratch: Path) -> dict[str, Any]:
    steps_cmd = train_command(data, scratch / "steps", args.depth, "none", "cpu")
    results: dict[str, Any] = {"steps": {"depth": args.depth,
                                         **peak_rss_after_steps(steps_cmd, args.steps)}}
    limit = "64" if args.quick else "1280"
    run_cmd = train_command(data, scratch / "run", args.run_depth, "none", "cpu", "--epochs", "1",
                            "--limit-train", limit)
    wall, peak, _ = run_to_end(run_cmd)
    results["run"] = {"depth": args.run_depth, "limit_train": int(limit), "peak_rss_mib": peak,
                      "seconds": wall}
    return results


def gpu_run(args: argparse.Namespace, data: Path, out: Path, survival: str) -> dict[str, Any]:
    cmd = train_command(data, out, args.depth, survival, args.device, "--epochs", str(args.epochs))
    wall, peak_rss, log = run_to_end(cmd)
    summary = json.loads((out / "summary.json").read_text())
    epochs = [float(row["epoch_seconds"]) for row in read_epochs(out)]
    evals = [float(v) for v in EVAL_LINE.findall(log)]
    last = epochs[-1] + (evals[-1] if evals else 0.0)
    return {"epoch_seconds": epochs, "eval_seconds": evals, "process_seconds": wall,
            "peak_memory_mib": summary["peak_memory_mb"],  # CUDA allocated (RSS on CPU)
            "peak_rss_mib": peak_rss,
            "mean_blocks_computed": summary["mean_blocks_computed"],
            "projected_500_epochs_min": 500 * last / 60, "device_name": summary["device"]}


def gpu_results(args: argparse.Namespace, data: Path, scratch: Path) -> dict[str, Any]:
    runs = {name: gpu_run(args, data, scratch / name, survival)
            for name, survival in (("baseline", "none"), ("stochastic", "linear"))}
    base, sd = runs["baseline"]["epoch_seconds"][-1], runs["stochastic"]["epoch_seconds"][-1]
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    return {"depth": args.depth, "train_images": counts["train"], **runs,
            "sd_over_base_epoch": sd / base}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=None, help="network of the peak (default 110)")
    p.add_argument("--steps", type=int, default=None, help="CPU: steps before reading the peak")
    p.add_argument("--run-depth", type=int, default=None, help="CPU: complete run's network (20)")
    p.add_argument("--epochs", type=int, default=2, help="CUDA: epochs per run")
    p.add_argument("--cache", type=Path, default=common.RESULTS / "cache")
    p.add_argument("--mode", choices=("rss", "epochs"), default=None,
                   help="rss: the CPU peak-RSS processes; epochs: the full-epoch runs "
                   "(default: epochs on CUDA, rss on CPU)")
    args = p.parse_args(argv)
    if args.mode is None:
        args.mode = "epochs" if args.device.startswith("cuda") else "rss"
    defaults = {"depth": 8 if args.quick else 110, "steps": 2 if args.quick else 5,
                "run_depth": 8 if args.quick else 20}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.epochs = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = prepared_folder(args.cache, args.quick)
    with tempfile.TemporaryDirectory(prefix="sdnet-bench-mem-") as tmp:
        if args.mode == "epochs":
            results = gpu_results(args, data, Path(tmp))
            rows = [{"run": name, "epoch s": r["epoch_seconds"][-1],
                     "eval s": (r["eval_seconds"] or [0])[-1], "peak device MiB": r["peak_memory_mib"],
                     "500 epochs min": r["projected_500_epochs_min"]}
                    for name, r in results.items() if isinstance(r, dict)]
        else:
            results = cpu_results(args, data, Path(tmp))
            rows = [{"process": name, "depth": r["depth"], "peak RSS MiB": r["peak_rss_mib"],
                     "seconds": r["seconds"]} for name, r in results.items()]
    common.write_result(args.out, "memory", args, results)
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
