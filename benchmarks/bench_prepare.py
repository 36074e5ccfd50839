"""Part 4: `prepare` throughput, images/s, on full-size fakes of CIFAR-10 and CINIC-10.

The fakes (`sdnet.data.make_fake(..., full_size=True)`: 60,000 CIFAR-10 images in the python
pickle format; 270,000 CINIC-10 PNGs, some greyscale or palette) are written once into
benchmarks/results/cache/ and reused. Each sample is one `sdnet.data.prepare` call into a fresh
folder with `--workers` decoding processes (default 2, the issue's "2 cores"); the two data sets
are interleaved.

    .venv/bin/python -m benchmarks.bench_prepare
    .venv/bin/python -m benchmarks.bench_prepare --quick     # 20 images per class and split
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common
from sdnet import data

DATASETS = ("cifar10", "cinic10")


def cached_fake(dataset: str, cache: Path, per_class: int | None) -> tuple[Path, float]:
    """(archive path, seconds it took to write; 0 when it was cached)."""
    size = "full" if per_class is None else f"pc{per_class}"
    path = cache / f"{dataset}-{size}" / data.DATASET_INFO[dataset].archive
    if path.is_file():
        return path, 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing the {size} {dataset} fake (once) ...", file=sys.stderr, flush=True)
    seconds, _ = common.time_once(lambda: data.make_fake(
        dataset, path, per_class=per_class, full_size=per_class is None))
    return path, seconds


class PrepareVariant:
    """One prepare of `archive` into a new folder under `scratch`; remembers the image count."""

    def __init__(self, dataset: str, archive: Path, scratch: Path, workers: int) -> None:
        self.dataset, self.archive, self.scratch, self.workers = dataset, archive, scratch, workers
        self.images = 0

    def __call__(self) -> None:
        out = self.scratch / self.dataset
        shutil.rmtree(out, ignore_errors=True)
        meta = data.prepare(self.dataset, self.archive, out, workers=self.workers)
        self.images = sum(meta["counts"].values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--cache", type=Path, default=common.RESULTS / "cache",
                   help="where the fake archives are kept between runs")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_class = 20 if args.quick else None
    fakes = {name: cached_fake(name, args.cache, per_class) for name in args.datasets}
    with tempfile.TemporaryDirectory(prefix="sdnet-bench-prep-") as tmp:
        variants = {name: PrepareVariant(name, fakes[name][0], Path(tmp), args.workers)
                    for name in args.datasets}
        samples = common.interleave(variants, args.repeats, warmup=0)
    results: dict[str, Any] = {"variants": {}}
    for name, s in samples.items():
        s.items = variants[name].images
        results["variants"][name] = {**s.summary(), "archive_bytes": fakes[name][0].stat().st_size,
                                     "make_fake_s": fakes[name][1]}
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    common.write_result(args.out, "prepare", args, results)
    rows = [{"data set": name, "images": v["items"], "median s": v["median_s"],
             "images/s": v["items_per_s"], "workers": args.workers}
            for name, v in results["variants"].items()]
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
