"""Where a training step spends its time: torch.profiler over the trainer's own steps.

Not a benchmark (profiling slows every op): the tool to find the cause when a target is missed.
Profiles `--steps` steps of `sdnet.train.loop.run_epoch` (one sample of bench_step's sdnet variant)
after a warm-up sample, and writes the operator table sorted by self time (device time on CUDA)
to <out>/profile-<device>-resnet<depth>-<survival>.txt.

    .venv/bin/python -m benchmarks.profile_step --depth 110 --steps 3
    .venv/bin/python -m benchmarks.profile_step --device cuda --depth 110 --steps 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import common
from benchmarks.bench_step import SdnetVariant, fake_split
from sdnet.atomic import atomic_write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=None, help="default 110 (20 with --quick)")
    p.add_argument("--survival", default="none", choices=("none", "linear"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (16 with --quick)")
    p.add_argument("--rows", type=int, default=25, help="operators in the table")
    args = p.parse_args(argv)
    args.depth = args.depth or (20 if args.quick else 110)
    args.batch_size = args.batch_size or (16 if args.quick else 128)
    if args.quick:
        args.steps = min(args.steps, 2)
    # SdnetVariant reads these bench_step flags
    args.no_amp = args.no_channels_last = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.apply_threads(args)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    images, labels = fake_split(args.steps * args.batch_size)
    variant = SdnetVariant(args.depth, args.survival, images, labels, args)
    variant()  # warm-up: allocator, cudnn autotuning, lazy init
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        variant()
        if cuda:
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=args.rows)
    name = f"profile-{args.device.split(':')[0]}-resnet{args.depth}-{args.survival}.txt"
    header = (f"{args.steps} steps of ResNet-{args.depth} ({args.survival}), batch "
              f"{args.batch_size}, {args.device}, torch threads {torch.get_num_threads()}\n")
    atomic_write_text(Path(args.out) / name, header + table + "\n")
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
