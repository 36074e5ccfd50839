"""Shared benchmark harness: interleaved timing, medians, machine facts, JSON results.

Timings on shared machines drift: every comparison here is made inside one run, with the variants
interleaved (round r runs A, B, C in a rotated order) so that a slow patch hits all of them, and
reported as medians over rounds plus the median of the per-round (paired) ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("torch", "torchvision", "numpy", "pillow", "snakemake", "sdnet")


@dataclass
class Samples:
    """Seconds per sample of one variant, and how many items (images, jobs) one sample covers."""

    seconds: list[float] = field(default_factory=list)
    items: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, Any]:
        """Median, spread and rate; the rate is items per median second."""
        s = sorted(self.seconds)
        q1, q3 = (statistics.quantiles(s, n=4)[0::2] if len(s) > 1 else (s[0], s[0]))
        return {
            "median_s": self.median, "min_s": s[0], "max_s": s[-1], "q1_s": q1, "q3_s": q3,
            "repeats": len(s), "items": self.items, "items_per_s": self.items / self.median,
        }


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def interleave(variants: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1,
               sync: Callable[[], None] | None = None,
               items: Mapping[str, int] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, Samples]:
    """Time each callable `repeats` times, rotating the order every round (ABC, BCA, CAB, ...).

    `warmup` untimed rounds come first (allocators, caches, lazy init). `sync` runs before each
    clock read (torch.cuda.synchronize on a GPU: launches are asynchronous). `clock`: wall time by
    default; `time.process_time` (CPU seconds of this process) is steadier on a machine other
    processes load, with one torch thread (idle OpenMP threads spin and would count).
    """
    names = list(variants)
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    sync()
    out = {name: Samples(items=(items or {}).get(name, 1)) for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            variants[name]()
            sync()
            out[name].seconds.append(clock() - start)
    return out


def paired_ratio(a: Samples, b: Samples) -> dict[str, float]:
    """a/b time ratio: median over rounds of the paired ratios, and ratio of the medians."""
    paired = [x / y for x, y in zip(a.seconds, b.seconds)]
    return {"paired_median": statistics.median(paired), "of_medians": a.median / b.median,
            "paired_min": min(paired), "paired_max": max(paired)}


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, for steps too long to repeat (prepare, a whole epoch)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Commit of the working tree, '+dirty' when it has uncommitted changes; never raises.

    $SDNET_GIT_COMMIT first: a lent GPU machine gets a copy of the tree without `.git` and has
    no `git`, so the commit is passed in from where git exists (benchmarks/run_gpu.sh). A
    benchmark calls this after measuring: a failure here must not lose the figures."""
    given = os.environ.get("SDNET_GIT_COMMIT", "").strip()
    if given:
        return given

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=False, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):  # no git, or it hung
            return ""
    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What a reader needs to judge a number: when, where, which code, how loaded."""
    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
        "platform": platform.platform(), "commit": git_commit(), "versions": versions(),
        "device": device,
    }
    if "torch" in sys.modules:  # only benches that use torch pay for importing it
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(device)
            info["cuda"] = torch.version.cuda
    return info


def base_parser(description: str) -> argparse.ArgumentParser:
    """Flags every bench shares: --quick, --device, --repeats, --out, --note."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a figure")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default per bench)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    p.add_argument("--note", default="", help="stored with the result (e.g. 'machine shared')")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: the machine's default, as users run)")
    return p


def apply_threads(args: argparse.Namespace) -> None:
    """Honour --threads; by default leave torch at its own choice (all cores)."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def write_result(out_dir: Path, name: str, args: argparse.Namespace,
                 results: dict[str, Any]) -> Path:
    """Write <out_dir>/<name>[-quick].json atomically: machine facts, settings, results."""
    from sdnet.atomic import atomic_write_json

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    doc = {"bench": name, "machine": machine_info(args.device), "settings": settings,
           "note": args.note, "results": results}
    suffix = "-quick" if args.quick else ""
    device = "" if args.device == "cpu" else "-" + args.device.split(":")[0]
    path = Path(out_dir) / f"{name}{device}{suffix}.json"
    atomic_write_json(path, doc)
    print(f"wrote {path}")
    return path


def print_table(rows: list[dict[str, Any]], floatfmt: str = ".3g") -> None:
    """A plain-text table on stdout (the part of the output a reader looks at)."""
    from tabulate import tabulate

    print(tabulate(rows, headers="keys", floatfmt=floatfmt))
    sys.stdout.flush()
