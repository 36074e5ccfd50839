"""Several runs per device: aggregate training throughput of k concurrent `sdnet train` processes.

A ResNet-110 at batch 128 does not fill an H100; Snakemake would start grid jobs as separate
processes. This starts k = 1, 2, 4 (`--k`) real `sdnet train` processes on the same device, on
CIFAR-10-sized data (bench_memory's cached random folder), each for `--epochs` epochs, and reads
every process's own epoch times from its metrics.csv. The first epoch of each process is left out
(start-up, cudnn autotuning, and the processes not yet overlapping); the aggregate throughput is
the sum over processes of training images per median remaining epoch second, i.e. what the device
delivers while all k train at once. Worth a setting only if k > 1 gives >= 1.5x the k = 1 rate.
Each trainer gets $SDNET_RUNS_PER_GPU = k, as the workflow's `train_resources.runs_per_gpu: k`
passes it (GPU slots, and 1/k of the device in its accounting).

    python -m benchmarks.bench_concurrent --device cuda            # k = 1, 2, 4, ResNet-110
    python -m benchmarks.bench_concurrent --device cpu --depth 20 --limit-train 2560
    python -m benchmarks.bench_concurrent --device cpu --quick     # smoke run of the code path
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.bench_memory import (
    FULL_COUNTS,
    QUICK_COUNTS,
    prepared_folder,
    read_epochs,
    train_command,
)


def concurrent_round(data: Path, scratch: Path, k: int, depth: int, survival: str, device: str,
                     epochs: int, images: int, threads: int | None = None) -> dict[str, Any]:
    """k trainers side by side; per-process epoch times and the aggregate images/s."""
    procs = []
    env = dict(os.environ, SDNET_RUNS_PER_GPU=str(k))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    for i in range(k):
        out = scratch / f"k{k}-{i}"
        cmd = train_command(data, out, depth, survival, device, "--epochs", str(epochs),
                            "--seed", str(i), "--limit-train", str(images))
        procs.append((out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True, env=env)))
    per_process = []
    for out, proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"trainer {out.name} failed ({proc.returncode}):\n{err[-3000:]}")
        seconds = [float(row["epoch_seconds"]) for row in read_epochs(out)]
        steady = seconds[1:] or seconds
        # steadiness: oversubscribed trainers swing by several x from epoch to epoch
        per_process.append({"epoch_seconds": seconds,
                            "images_per_s": images / statistics.median(steady),
                            "max_over_median": max(steady) / statistics.median(steady)})
    return {"k": k, "wall_s": time.perf_counter() - start, "processes": per_process,
            "aggregate_images_per_s": sum(p["images_per_s"] for p in per_process)}


def parse_args(argv: list[str] | None = None):
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="trainers side by side")
    p.add_argument("--depth", type=int, default=None, help="network (default 110; quick: 8)")
    p.add_argument("--survival", default="linear", help="survival rule of every trainer")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trainer (the first is dropped)")
    p.add_argument("--limit-train", type=int, default=None,
                   help="training images per epoch (default: all 45,000; quick: 450)")
    p.add_argument("--threads-per-run", type=int, default=None,
                   help="OMP_NUM_THREADS of each trainer (default: torch's own, all cores)")
    p.add_argument("--cache", type=Path, default=common.RESULTS / "cache")
    args = p.parse_args(argv)
    if args.depth is None:
        args.depth = 8 if args.quick else 110
    if args.quick:
        args.k, args.epochs = [1, 2], 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = prepared_folder(args.cache, args.quick)
    images = (QUICK_COUNTS if args.quick else FULL_COUNTS)["train"]
    images = min(images, args.limit_train or images)
    with tempfile.TemporaryDirectory(prefix="sdnet-bench-k-") as tmp:
        rounds = [concurrent_round(data, Path(tmp), k, args.depth, args.survival, args.device,
                                   args.epochs, images, args.threads_per_run) for k in args.k]
    single = rounds[0]["aggregate_images_per_s"]
    for r in rounds:
        r["speedup_vs_first"] = r["aggregate_images_per_s"] / single
    results = {"depth": args.depth, "survival": args.survival, "train_images": images,
               "epochs": args.epochs, "threads_per_run": args.threads_per_run, "rounds": rounds}
    common.write_result(args.out, "concurrent", args, results)
    common.print_table([{"k": r["k"], "images/s (all)": r["aggregate_images_per_s"],
                         "x k=first": r["speedup_vs_first"], "wall s": r["wall_s"],
                         "epoch max/median": max(p["max_over_median"] for p in r["processes"])}
                        for r in rounds])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
