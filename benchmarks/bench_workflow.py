"""Part 3: workflow overhead: what a `snakemake` call costs before (or instead of) any work.

Timed as a user sees it (a fresh `snakemake` process, interpreter start-up included; the
process's CPU seconds are recorded too, as they suffer less from a loaded machine), in a
scratch copy of the workflow (Snakefile, config.yaml, config/, workflow/) so that nothing in the
checkout's results/ changes what is scheduled:
- dry-full: `snakemake -n` on the full default grid of config.yaml;
- dry-1000: `snakemake -n` on a grid of 1,000 training jobs (a --configfile overlay, below);
- version: `snakemake --version`, the floor (interpreter + Snakemake import), for scale;
- noop-demo: `snakemake --cores 2 --configfile config/demo.yaml` on a finished demo (nothing to
  do); the demo is run to completion once, untimed, before the loop.

    .venv/bin/python -m benchmarks.bench_workflow
    .venv/bin/python -m benchmarks.bench_workflow --quick    # small grid, no demo
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common

COPIED = ("Snakefile", "config.yaml", "config", "workflow", "slurm", "profiles")
CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def scratch_copy(dest: Path) -> Path:
    """The workflow files only (no results, no resources, no .snakemake)."""
    for name in COPIED:
        src = common.ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def grid_overlay(jobs: int) -> dict[str, Any]:
    """A config overlay with `jobs` training runs: 2 data sets x 5 depths x 2 variants x seeds."""
    per_seed = 2 * len(CIFAR_DEPTHS) * 2
    seeds = math.ceil(jobs / per_seed)
    return {"experiment": {"datasets": ["cifar10", "cinic10"], "depths": list(CIFAR_DEPTHS),
                           "variants": ["baseline", "stochastic"], "seeds": list(range(seeds))}}


def snakemake_env() -> dict[str, str]:
    """The venv's bin first on PATH, so rules find `sdnet` as a user's activated venv would."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "snakemake"), *args]
    result = subprocess.run(cmd, cwd=workdir, env=snakemake_env(), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_jobs(output: str, rule: str | None = None) -> int:
    """Jobs in a dry run's summary table ('total N', or the row of one rule)."""
    name = rule or "total"
    match = re.search(rf"^{name}\s+(\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else -1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=None, help="training jobs in the big grid (1000)")
    p.add_argument("--no-demo", action="store_true", help="skip the finished-demo no-op run")
    args = p.parse_args(argv)
    if args.jobs is None:
        args.jobs = 40 if args.quick else 1000
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    args.no_demo = args.no_demo or args.quick
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    scratch_copy(workdir)
    overlay = workdir / "grid.yaml"
    overlay.write_text(yaml.safe_dump(grid_overlay(args.jobs)))
    commands = {"version": ("--version",), "dry-full": ("-n",),
                "dry-grid": ("-n", "--configfile", "grid.yaml")}
    if not args.no_demo:
        demo = ("--cores", "2", "--configfile", "config/demo.yaml")
        seconds, _ = common.time_once(lambda: snakemake(workdir, *demo))
        print(f"demo finished in {seconds:.0f} s (untimed set-up)", file=sys.stderr)
        commands["noop-demo"] = demo
    outputs: dict[str, str] = {}
    cpu: dict[str, list[float]] = {name: [] for name in commands}

    def call(name: str) -> Any:
        def once() -> None:
            before = children_cpu()
            outputs[name] = snakemake(workdir, *commands[name]).stdout
            cpu[name].append(children_cpu() - before)
        return once

    samples = common.interleave({n: call(n) for n in commands}, args.repeats, warmup=1)
    results: dict[str, Any] = {"variants": {n: s.summary() for n, s in samples.items()}}
    for name, seconds in cpu.items():  # user+sys of the snakemake process: robust to load
        results["variants"][name]["cpu_median_s"] = statistics.median(seconds[-args.repeats:])
    for name in ("dry-full", "dry-grid"):
        results["variants"][name]["jobs"] = count_jobs(outputs[name])
        results["variants"][name]["train_jobs"] = count_jobs(outputs[name], "train_run")
    if "noop-demo" in outputs:
        results["variants"]["noop-demo"]["nothing_to_do"] = "Nothing to be done" in (
            outputs["noop-demo"] + "")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdnet-bench-wf-") as tmp:
        results = run(args, Path(tmp))
    common.write_result(args.out, "workflow", args, results)
    rows = [{"call": name, "median s": v["median_s"], "min s": v["min_s"],
             "cpu s": v["cpu_median_s"],
             "jobs": v.get("jobs", ""), "train jobs": v.get("train_jobs", "")}
            for name, v in results["variants"].items()]
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
