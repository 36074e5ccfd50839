"""Part 1: one training step, sdnet (baseline, stochastic) vs the conventional reference.

Four variants per depth, interleaved in one loop; one sample = `--steps` training steps:
- sdnet-base / sdnet-sd: exactly the trainer's code path, `sdnet.train.loop.run_epoch` over a
  DeviceLoader holding `steps` batches (on-device crop+flip, gated model, SGD, the gradient
  meter, the epoch's one sync), with the trainer's own model/optimizer builders and device settings (channels_last; bf16
  autocast on CUDA and on CPUs with native bf16, as the trainer's `--amp`; `--no-amp` for
  float32, `--no-channels-last` for NCHW).
- ref-base / ref-sd: the conventional recipe of benchmarks/reference.py (DataLoader over PIL
  images, torchvision StochasticDepth computing every branch), a full step with its data loading.

Also reported: the expected compute fraction of the stochastic net (FLOPs of each residual
branch weighted by its survival probability, counted by torch.utils.flop_counter) next to the
measured time ratio, and the fraction of branches actually computed in the timed samples.

    .venv/bin/python -m benchmarks.bench_step            # ResNet-20/56/110, batch 128, CPU
    .venv/bin/python -m benchmarks.bench_step --quick    # smoke run (seconds)
    # the stochastic-depth target: sdnet only, many rounds; on a loaded machine one thread and
    # CPU seconds (--clock cpu) are steadier than wall time
    .venv/bin/python -m benchmarks.bench_step --depths 110 --sdnet-only --repeats 15 --steps 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import common, reference
from sdnet import data
from sdnet.train import device as sdnet_device
from sdnet.train import loop as train
from sdnet.train.gradients import GradientMeter

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def fake_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (never zeros: they can time differently) and labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def trainer_config(depth: int, survival: str, args: argparse.Namespace) -> train.TrainConfig:
    return train.TrainConfig(data="unused", dataset="cifar10", depth=depth, out="unused",
                             survival=survival, p_last=0.5, batch_size=args.batch_size,
                             device=args.device, precision="float32" if args.no_amp else "bf16",
                             channels_last=not args.no_channels_last)


class SdnetVariant:
    """The trainer's epoch loop over a loader of exactly `steps` batches: one call = one sample.

    `gradients`: the trainer's gradient meter (sdnet.train.gradients) on every block ("all", as the
    trainer runs), on the first block only ("first") or none ("none")."""

    def __init__(self, depth: int, survival: str, images: np.ndarray, labels: np.ndarray,
                 args: argparse.Namespace, gradients: str = "all") -> None:
        self.config = trainer_config(depth, survival, args)
        self.device = torch.device(args.device)
        self.model = train.build_model(self.config, self.device)
        self.optimizer, _ = train.build_optimizer(self.model, self.config)
        self.meter = None if gradients == "none" else GradientMeter(
            self.model.blocks, per_block=gradients == "all")
        channels_last = train.use_channels_last(self.config, self.device)
        self.loader = data.DeviceLoader(images, labels, batch_size=args.batch_size,
                                        device=self.device, mean=MEAN, std=STD, augment=True,
                                        shuffle=True, seed=0, channels_last=channels_last)
        self.epoch = 0
        self.blocks_computed: list[float] = []

    def __call__(self) -> None:
        stats = train.run_epoch(self.model, self.loader, self.optimizer, self.epoch, self.config,
                                self.device, gradients=self.meter)
        self.epoch += 1
        self.blocks_computed.append(stats.blocks_computed)


class ReferenceVariant:
    """A conventional training step: next batch from the DataLoader, copy, forward/backward/SGD."""

    def __init__(self, depth: int, p_last: float | None, images: np.ndarray, labels: np.ndarray,
                 args: argparse.Namespace) -> None:
        self.device = torch.device(args.device)
        torch.manual_seed(0)
        self.model = reference.build(depth, p_last).to(self.device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                         weight_decay=1e-4, nesterov=True)
        loader = reference.make_loader(images, labels, batch_size=args.batch_size,
                                       workers=args.ref_workers, mean=MEAN, std=STD,
                                       pin_memory=self.device.type == "cuda")
        self.batches = reference.endless(loader)
        self.steps = args.steps

    def step(self) -> None:
        x, y = next(self.batches)
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def __call__(self) -> None:
        for _ in range(self.steps):
            self.step()


def branch_flops(model: torch.nn.Module) -> tuple[list[int], int]:
    """Forward FLOPs of each residual branch and of everything else, for one 32x32 image."""
    model = model.cpu().eval()
    x = torch.randn(1, 3, 32, 32)
    per_block = []
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        total = counter.get_total_flops()
        out = model.stem(x)
        for block in model.blocks:
            counter = FlopCounterMode(display=False)
            with counter:
                block.branch(out)
            per_block.append(counter.get_total_flops())
            out = block(out)
    return per_block, total - sum(per_block)


def expected_compute_fraction(depth: int) -> dict[str, float]:
    """Expected FLOPs of the stochastic net over the full net (forward; backward scales alike)."""
    from sdnet import models

    model = models.build_model(depth, survival="linear", p_last=0.5)
    per_block, rest = branch_flops(model)
    probs = model.gate.probabilities
    expected = rest + sum(p * f for p, f in zip(probs, per_block))
    return {"expected_flop_fraction": expected / (rest + sum(per_block)),
            "expected_block_fraction": model.gate.expected_fraction(),
            "forward_gflops_per_image": (rest + sum(per_block)) / 1e9}


def sync_for(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def bench_depth(depth: int, args: argparse.Namespace) -> dict[str, Any]:
    """All four variants of one depth, interleaved; ratios from the paired rounds."""
    images, labels = fake_split(args.data_size)
    subset = images[:args.steps * args.batch_size], labels[:args.steps * args.batch_size]
    sdnet_sd = SdnetVariant(depth, "linear", *subset, args)
    variants = {
        "sdnet-base": SdnetVariant(depth, "none", *subset, args),
        "sdnet-sd": sdnet_sd,
    }
    if not args.sdnet_only:
        variants["ref-base"] = ReferenceVariant(depth, None, images, labels, args)
        variants["ref-sd"] = ReferenceVariant(depth, 0.5, images, labels, args)
    imgs = args.steps * args.batch_size
    samples = common.interleave(variants, args.repeats, args.warmup,
                                sync=sync_for(torch.device(args.device)),
                                items=dict.fromkeys(variants, imgs),
                                clock=common.CLOCKS[args.clock])
    ratio = common.paired_ratio
    timed_blocks = sdnet_sd.blocks_computed[-args.repeats:]
    amp = sdnet_device.amp_active(not args.no_amp, torch.device(args.device))
    result = {
        "depth": depth,
        "sdnet_precision": "bf16 autocast" if amp else "float32",
        "clock": args.clock,
        "variants": {name: s.summary() for name, s in samples.items()},
        "sd_over_base_sdnet": ratio(samples["sdnet-sd"], samples["sdnet-base"]),
        "sd_over_base_sdnet_rounds": [a / b for a, b in zip(samples["sdnet-sd"].seconds,
                                                            samples["sdnet-base"].seconds)],
        "sd_blocks_computed_timed": statistics.mean(timed_blocks),
        **expected_compute_fraction(depth),
    }
    if not args.sdnet_only:
        result.update({
            "sd_over_base_ref": ratio(samples["ref-sd"], samples["ref-base"]),
            "speedup_sd_sdnet_vs_ref": _inverse(ratio(samples["sdnet-sd"], samples["ref-sd"])),
            "speedup_base_sdnet_vs_ref": _inverse(ratio(samples["sdnet-base"],
                                                        samples["ref-base"])),
        })
    return result


def _inverse(r: dict[str, float]) -> dict[str, float]:
    """a/b time ratio -> b/a speedup (min and max swap)."""
    return {"paired_median": 1 / r["paired_median"], "of_medians": 1 / r["of_medians"],
            "paired_min": 1 / r["paired_max"], "paired_max": 1 / r["paired_min"]}


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        v = r["variants"]
        rows.append({
            "depth": r["depth"],
            "sdnet": r["sdnet_precision"],
            **{f"{name} img/s": v[name]["items_per_s"] for name in v},
            "SD/base sdnet": r["sd_over_base_sdnet"]["paired_median"],
            "rounds min-max": "{paired_min:.3f}-{paired_max:.3f}".format(**r["sd_over_base_sdnet"]),
            "E[flops] SD/base": r["expected_flop_fraction"],
            "blocks run": r["sd_blocks_computed_timed"],
        })
        if "sd_over_base_ref" in r:
            rows[-1].update({
                "SD/base ref": r["sd_over_base_ref"]["paired_median"],
                "sdnet/ref SD x": r["speedup_sd_sdnet_vs_ref"]["paired_median"],
                "sdnet/ref base x": r["speedup_base_sdnet_vs_ref"]["paired_median"],
            })
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=None, help="default 20 56 110")
    p.add_argument("--batch-size", type=int, default=None, help="default 128")
    p.add_argument("--steps", type=int, default=None, help="training steps per timed sample")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--ref-workers", type=int, default=None,
                   help="reference DataLoader workers (default 2, as the PyTorch CIFAR tutorial)")
    p.add_argument("--data-size", type=int, default=None,
                   help="images in the reference's data set (default 45000)")
    p.add_argument("--no-amp", action="store_true",
                   help="sdnet without bf16 autocast (default: bf16 on CUDA and on CPUs with "
                   "native bf16, as the trainer)")
    p.add_argument("--no-channels-last", action="store_true", help="sdnet in NCHW")
    p.add_argument("--sdnet-only", action="store_true",
                   help="leave out the reference variants (the SD / baseline ratio alone)")
    p.add_argument("--clock", choices=tuple(common.CLOCKS), default="wall",
                   help="wall seconds, or CPU seconds of the process (steadier on a loaded "
                   "machine with --threads 1)")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"depths": [20] if quick else [20, 56, 110], "batch_size": 16 if quick else 128,
                "steps": 2 if quick else 3, "repeats": 3 if quick else 7,
                "data_size": 256 if quick else 45000, "ref_workers": 0 if quick else 2}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.apply_threads(args)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # as the trainer sets it
    results = []
    for depth in args.depths:
        results.append(bench_depth(depth, args))
        print(f"ResNet-{depth} done", file=sys.stderr, flush=True)
    common.write_result(args.out, "step", args, {"depths": results})
    common.print_table(table_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
