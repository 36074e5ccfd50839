"""Part 2: the data pipeline alone, images/s: sdnet's on-device augmentation vs torchvision.

Variants, interleaved; one sample = `--batches` batches of `--batch-size` augmented, normalised
images delivered where training needs them (on the device):
- sdnet: `DeviceLoader.batches(epoch)` over a split already on the device (shuffle, pad-4 crop,
  flip, normalise; the epoch's plan drawn on the device), as the trainer runs it.
- sdnet-gather: the same with benchmarks.proposals.crop_flip_gather swapped in (a proposed
  change to sdnet.data, measured here first; `--no-proposal` skips it).
- tv-w0 / tv-w2: the conventional DataLoader of benchmarks/reference.py (PIL images,
  RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) with 0 and 2 worker
  processes, plus the host-to-device copy on CUDA (pinned memory). Workers persist across
  samples and prefetch up to 2 batches each while other variants run, which flatters them by at
  most 4/--batches of a sample (5 % at the default 80).

    .venv/bin/python -m benchmarks.bench_data            # CPU
    .venv/bin/python -m benchmarks.bench_data --quick
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks import common, proposals, reference
from benchmarks.bench_step import MEAN, STD, fake_split
from sdnet import data
from sdnet.data import loader as loader_module


class DeviceVariant:
    """One pass over a DeviceLoader holding exactly `batches` batches."""

    def __init__(self, args: argparse.Namespace) -> None:
        images, labels = fake_split(args.batches * args.batch_size)
        self.loader = data.DeviceLoader(images, labels, batch_size=args.batch_size,
                                        device=args.device, mean=MEAN, std=STD, augment=True,
                                        shuffle=True, seed=0,
                                        channels_last=args.device.startswith("cuda"))
        self.epoch = 0
        self.checksum = torch.zeros((), device=args.device)

    def __call__(self) -> None:
        for x, _ in self.loader.batches(self.epoch):
            self.checksum += x[0, 0, 0, 0]  # consume the batch (as a step would) without a sync
        self.epoch += 1


class ProposalVariant(DeviceVariant):
    """The same DeviceLoader with benchmarks.proposals.crop_flip_gather swapped in."""

    def __call__(self) -> None:
        original = loader_module.crop_flip
        loader_module.crop_flip = proposals.crop_flip_gather
        try:
            super().__call__()
        finally:
            loader_module.crop_flip = original


class TorchvisionVariant:
    """`batches` batches from a persistent DataLoader iterator, moved to the device."""

    def __init__(self, args: argparse.Namespace, workers: int) -> None:
        images, labels = fake_split(args.data_size)
        self.device = torch.device(args.device)
        loader = reference.make_loader(images, labels, batch_size=args.batch_size,
                                       workers=workers, mean=MEAN, std=STD,
                                       pin_memory=self.device.type == "cuda")
        self.batches = reference.endless(loader)
        self.count = args.batches
        self.checksum = torch.zeros((), device=self.device)

    def __call__(self) -> None:
        for _ in range(self.count):
            x, _ = next(self.batches)
            x = x.to(self.device, non_blocking=True)
            self.checksum += x[0, 0, 0, 0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=None, help="batches per sample (default 80)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                   help="DataLoader worker counts to compare")
    p.add_argument("--data-size", type=int, default=None, help="DataLoader data set (45000)")
    p.add_argument("--no-proposal", action="store_true",
                   help="skip sdnet-gather (DeviceLoader with benchmarks.proposals.crop_flip_gather)")
    args = p.parse_args(argv)
    if args.batches is None:
        args.batches = 4 if args.quick else 80
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.data_size is None:
        args.data_size = 1024 if args.quick else 45000
    if args.quick:
        args.batch_size = min(args.batch_size, 32)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    variants: dict[str, Any] = {"sdnet": DeviceVariant(args)}
    if not args.no_proposal:
        variants["sdnet-gather"] = ProposalVariant(args)
    for workers in args.workers:
        variants[f"tv-w{workers}"] = TorchvisionVariant(args, workers)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    samples = common.interleave(variants, args.repeats, warmup=1, sync=sync,
                                items=dict.fromkeys(variants, args.batches * args.batch_size))
    results: dict[str, Any] = {"variants": {n: s.summary() for n, s in samples.items()}}
    for name in variants:
        if name.startswith("tv-"):
            ratio = common.paired_ratio(samples[name], samples["sdnet"])
            results[f"speedup_vs_{name}"] = ratio["paired_median"]
            if "sdnet-gather" in samples:
                gather = common.paired_ratio(samples[name], samples["sdnet-gather"])
                results[f"proposal_speedup_vs_{name}"] = gather["paired_median"]
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.apply_threads(args)
    results = run(args)
    common.write_result(args.out, "data", args, results)
    rows = [{"pipeline": name, "images/s": v["items_per_s"], "median s": v["median_s"],
             "sdnet speedup x": results.get(f"speedup_vs_{name}", ""),
             "sdnet-gather speedup x": results.get(f"proposal_speedup_vs_{name}", "")}
            for name, v in results["variants"].items()]
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
