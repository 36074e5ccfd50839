"""Part 4: `prepare` throughput (images/s) and peak memory on full-size fakes of every data set.

The fakes (`sdnet.data.make_fake(..., full_size=True)`: 60,000 CIFAR-10 and 60,000 CIFAR-100
images in the python pickle format; 270,000 CINIC-10 PNGs, some greyscale or palette; SVHN's
73,257 + 26,032 + 531,131 images in three MATLAB v5 files) are written once into
benchmarks/results/cache/ and reused. Each timed sample is one `sdnet.data.prepare` call into a
fresh folder with `--workers` decoding processes (default 2, the issue's "2 cores"); the data
sets are interleaved. Then one more prepare per data set runs in a child process whose peak RSS
(resource.getrusage: the child itself, and its own decoding workers) is the memory figure; SVHN's
must stay within 6 GiB while it builds its 1.9 GB of arrays.

    .venv/bin/python -m benchmarks.bench_prepare
    .venv/bin/python -m benchmarks.bench_prepare --datasets svhn --repeats 1
    .venv/bin/python -m benchmarks.bench_prepare --quick     # 20 images per class and split
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common
from sdnet import data
from sdnet.data.registry import dataset_names, get_dataset

DATASETS = dataset_names()
SVHN_RSS_LIMIT_MIB = 6 * 1024
QUICK_PER_CLASS = 20
# Run in the child: one prepare, then its own peak RSS and its children's (both KiB on Linux).
_CHILD = """
import json, resource, sys, time
from sdnet import data
args = json.loads(sys.argv[1])
start = time.perf_counter()
meta = data.prepare(args["dataset"], args["archive"], args["out"], workers=args["workers"],
                    **args["options"])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "images": sum(meta["counts"].values()),
                  "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def cached_fake(dataset: str, cache: Path, per_class: int | None) -> tuple[Path, float]:
    """(archive path -- SVHN: the folder of .mat files --, seconds it took to write; 0 when it
    was cached)."""
    size = "full" if per_class is None else f"pc{per_class}"
    ds = get_dataset(dataset)
    folder = cache / f"{dataset}-{size}"
    path = folder if ds.folder else folder / ds.files[0].name
    if all((folder / name).is_file() for name in ds.file_names):
        return path, 0.0
    folder.mkdir(parents=True, exist_ok=True)
    print(f"writing the {size} {dataset} fake (once) ...", file=sys.stderr, flush=True)
    seconds, _ = common.time_once(lambda: data.make_fake(
        dataset, path, per_class=per_class, full_size=per_class is None))
    return path, seconds


def prepare_options(dataset: str, quick: bool) -> dict[str, Any]:
    """The data set's own defaults (the paper's 400/200 SVHN split), scaled down for --quick."""
    return get_dataset(dataset).fake_options(QUICK_PER_CLASS) if quick else {}


class PrepareVariant:
    """One prepare of `archive` into a new folder under `scratch`; remembers the image count."""

    def __init__(self, dataset: str, archive: Path, scratch: Path, workers: int,
                 options: dict[str, Any]) -> None:
        self.dataset, self.archive, self.scratch, self.workers = dataset, archive, scratch, workers
        self.options = options
        self.images = 0

    def __call__(self) -> None:
        out = self.scratch / self.dataset
        shutil.rmtree(out, ignore_errors=True)
        meta = data.prepare(self.dataset, self.archive, out, workers=self.workers, **self.options)
        self.images = sum(meta["counts"].values())


def peak_rss(dataset: str, archive: Path, scratch: Path, workers: int,
             options: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS (MiB) of one prepare in a fresh child process, and its seconds there."""
    out = scratch / f"{dataset}-rss"
    shutil.rmtree(out, ignore_errors=True)
    args = {"dataset": dataset, "archive": str(archive), "out": str(out), "workers": workers,
            "options": options}
    result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], check=True,
                            capture_output=True, text=True, cwd=common.ROOT)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return {"peak_rss_mib": child["self_kib"] / 1024,
            "workers_peak_rss_mib": child["children_kib"] / 1024,
            "child_seconds": child["seconds"], "child_images": child["images"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--cache", type=Path, default=common.RESULTS / "cache",
                   help="where the fake archives are kept between runs")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-memory child runs")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_class = QUICK_PER_CLASS if args.quick else None
    fakes = {name: cached_fake(name, args.cache, per_class) for name in args.datasets}
    options = {name: prepare_options(name, args.quick) for name in args.datasets}
    with tempfile.TemporaryDirectory(prefix="sdnet-bench-prep-") as tmp:
        variants = {name: PrepareVariant(name, fakes[name][0], Path(tmp), args.workers,
                                         options[name]) for name in args.datasets}
        samples = common.interleave(variants, args.repeats, warmup=0)
        memory = {} if args.no_rss else {
            name: peak_rss(name, fakes[name][0], Path(tmp), args.workers, options[name])
            for name in args.datasets}
    results: dict[str, Any] = {"variants": {}, "svhn_rss_limit_mib": SVHN_RSS_LIMIT_MIB}
    for name, s in samples.items():
        s.items = variants[name].images
        source = fakes[name][0]
        size = sum(f.stat().st_size for f in source.iterdir()) if source.is_dir() \
            else source.stat().st_size
        results["variants"][name] = {**s.summary(), "archive_bytes": size,
                                     "make_fake_s": fakes[name][1], **memory.get(name, {})}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    common.write_result(args.out, "prepare", args, results)
    rows = [{"data set": name, "images": v["items"], "median s": v["median_s"],
             "images/s": v["items_per_s"], "peak RSS MiB": v.get("peak_rss_mib"),
             "workers": args.workers}
            for name, v in results["variants"].items()]
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
