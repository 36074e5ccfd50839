"""Part 6: what recording gradient strength (sdnet.train.gradients) costs the training step.

Three variants of the trainer's epoch loop (`sdnet.train.loop.run_epoch`, bench_step's SdnetVariant:
on-device data, gated model, SGD, channels_last, bf16 autocast where the trainer uses it), one
survival rule at a time, interleaved in one loop; one sample = `--steps` training steps:
- `none`: no gradient meter;
- `first`: the paper's quantity only (block 1's first convolution: one norm per step);
- `all`: every block's first convolution (what the trainer records).
Reported: the median paired time ratio first/none and all/none per rule (1.02 = 2 % slower),
on the wall clock and on the process's CPU time (`time.process_time`: on a shared, loaded
machine the wall clock mostly measures the neighbours; the CPU time is what the step itself
spends); and the meter's own cost in isolation: `after_backward` on the real gradients,
repeated, against the CPU time of a step.

    .venv/bin/python -m benchmarks.bench_gradients            # ResNet-110, batch 128, CPU
    .venv/bin/python -m benchmarks.bench_gradients --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from benchmarks import common
from benchmarks.bench_step import SdnetVariant, fake_split, sync_for
from sdnet.train.gradients import GradientMeter

METERS = ("none", "first", "all")


def interleave_two_clocks(variants: Mapping[str, Callable[[], Any]], repeats: int, warmup: int,
                          sync: Callable[[], None] | None, items: int
                          ) -> tuple[dict[str, common.Samples], dict[str, common.Samples]]:
    """common.interleave's rotation, timing each sample on the wall clock and in CPU time."""
    names, sync = list(variants), sync or (lambda: None)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    sync()
    wall = {name: common.Samples(items=items) for name in names}
    cpu = {name: common.Samples(items=items) for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            variants[name]()
            sync()
            wall[name].seconds.append(time.perf_counter() - start)
            cpu[name].seconds.append(time.process_time() - start_cpu)
    return wall, cpu


def meter_alone(variant: SdnetVariant, per_block: bool, calls: int) -> float:
    """Median seconds of one `after_backward` on the network's real gradients (the blocks of
    its last training draw), the meter's whole per-step work."""
    meter = GradientMeter(variant.model.blocks, per_block=per_block)
    active = variant.model.gate.last_active
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        meter.after_backward(active)
        times.append(time.perf_counter() - start)
    meter.epoch_figures()
    return statistics.median(times)


def bench_rule(depth: int, survival: str, args: argparse.Namespace) -> dict[str, Any]:
    images, labels = fake_split(args.steps * args.batch_size)
    variants = {meter: SdnetVariant(depth, survival, images, labels, args, gradients=meter)
                for meter in METERS}
    wall, cpu = interleave_two_clocks(variants, args.repeats, args.warmup,
                                      sync_for(torch.device(args.device)),
                                      args.steps * args.batch_size)
    step_cpu = cpu["none"].median / args.steps
    alone = {m: meter_alone(variants["none"], m == "all", args.meter_calls)
             for m in ("first", "all")}
    return {
        "depth": depth, "survival": survival, "steps": args.steps,
        "variants": {name: s.summary() for name, s in wall.items()},
        "variants_cpu": {name: s.summary() for name, s in cpu.items()},
        "first_over_none": common.paired_ratio(wall["first"], wall["none"]),
        "all_over_none": common.paired_ratio(wall["all"], wall["none"]),
        "first_over_none_cpu": common.paired_ratio(cpu["first"], cpu["none"]),
        "all_over_none_cpu": common.paired_ratio(cpu["all"], cpu["none"]),
        "meter_alone_s": alone,
        "meter_alone_fraction_of_step_cpu": {m: t / step_cpu for m, t in alone.items()},
    }


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"depth": r["depth"], "survival": r["survival"],
             **{f"{m} cpu s/step": r["variants_cpu"][m]["median_s"] / r["steps"] for m in METERS},
             "first/none wall": r["first_over_none"]["paired_median"],
             "all/none wall": r["all_over_none"]["paired_median"],
             "first/none cpu": r["first_over_none_cpu"]["paired_median"],
             "all/none cpu": r["all_over_none_cpu"]["paired_median"],
             "all/none cpu of medians": r["all_over_none_cpu"]["of_medians"],
             "meter alone (all) ms": 1000 * r["meter_alone_s"]["all"],
             "meter alone / step": r["meter_alone_fraction_of_step_cpu"]["all"]}
            for r in results]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=None, help="default 110")
    p.add_argument("--survival", nargs="+", default=["none", "linear"],
                   help="survival rules to time (default: none linear)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128")
    p.add_argument("--steps", type=int, default=None, help="training steps per timed sample")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--no-amp", action="store_true", help="float32 instead of the trainer's bf16")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW")
    p.add_argument("--meter-calls", type=int, default=None,
                   help="repeats of the meter alone (default 200)")
    args = p.parse_args(argv)
    defaults = {"depth": 8 if args.quick else 110, "batch_size": 8 if args.quick else 128,
                "steps": 1 if args.quick else 3, "repeats": 2 if args.quick else 15,
                "meter_calls": 5 if args.quick else 200}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.apply_threads(args)
    results = []
    for survival in args.survival:
        results.append(bench_rule(args.depth, survival, args))
        print(f"ResNet-{args.depth} {survival} done", file=sys.stderr, flush=True)
    common.write_result(args.out, "gradients", args, {"rules": results})
    common.print_table(table_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
