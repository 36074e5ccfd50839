"""Part 6: what recording gradient strength (sdnet.gradients) costs the training step.

Three variants of the trainer's epoch loop (`sdnet.train.run_epoch`, bench_step's SdnetVariant:
on-device data, gated model, SGD, channels_last, bf16 autocast where the trainer uses it), one
survival rule at a time, interleaved in one loop; one sample = `--steps` training steps:
- `none`: no gradient meter;
- `first`: the paper's quantity only (block 1's first convolution: one norm per step);
- `all`: every block's first convolution (what the trainer records).
Reported: the median paired time ratio first/none and all/none per rule (1.02 = 2 % slower).

    .venv/bin/python -m benchmarks.bench_gradients            # ResNet-110, batch 128, CPU
    .venv/bin/python -m benchmarks.bench_gradients --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from benchmarks import common
from benchmarks.bench_step import SdnetVariant, fake_split, sync_for

METERS = ("none", "first", "all")


def bench_rule(depth: int, survival: str, args: argparse.Namespace) -> dict[str, Any]:
    images, labels = fake_split(args.steps * args.batch_size)
    variants = {meter: SdnetVariant(depth, survival, images, labels, args, gradients=meter)
                for meter in METERS}
    samples = common.interleave(variants, args.repeats, args.warmup,
                                sync=sync_for(torch.device(args.device)),
                                items=dict.fromkeys(variants, args.steps * args.batch_size))
    return {
        "depth": depth, "survival": survival,
        "variants": {name: s.summary() for name, s in samples.items()},
        "first_over_none": common.paired_ratio(samples["first"], samples["none"]),
        "all_over_none": common.paired_ratio(samples["all"], samples["none"]),
    }


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"depth": r["depth"], "survival": r["survival"],
             **{f"{m} s/step": r["variants"][m]["median_s"] / r["steps"] for m in METERS},
             "first/none": r["first_over_none"]["paired_median"],
             "all/none": r["all_over_none"]["paired_median"],
             "all/none min..max": f"{r['all_over_none']['paired_min']:.3f}.."
                                  f"{r['all_over_none']['paired_max']:.3f}"}
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
    args = p.parse_args(argv)
    defaults = {"depth": 8 if args.quick else 110, "batch_size": 8 if args.quick else 128,
                "steps": 1 if args.quick else 3, "repeats": 2 if args.quick else 15}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.apply_threads(args)
    results = []
    for survival in args.survival:
        result = bench_rule(args.depth, survival, args)
        result["steps"] = args.steps
        results.append(result)
        print(f"ResNet-{args.depth} {survival} done", file=sys.stderr, flush=True)
    common.write_result(args.out, "gradients", args, {"rules": results})
    common.print_table(table_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
