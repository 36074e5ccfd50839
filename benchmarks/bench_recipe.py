"""The cost of the original code's recipe (docs/recipe.md), side by side in one process.

Interleaved variants (benchmarks/common.py), one sample = `--steps` training steps of the
trainer's own loop (`sdnet.train.loop.run_epoch`) on a stochastic-depth ResNet (linear, p_L 0.5):
- float32: the original's precision (sdnet's default);
- bf16: `precision bf16`. On a CPU without native bf16 sdnet trains float32 anyway, so this
  variant forces the autocast on (`--force-bf16`, default) to show what bf16 would cost here;
- loader-original / loader-fast: the augmented batches alone (pixel normalisation + mean-colour
  border against channel normalisation + black border), `--loader-batches` batches a sample.
Then the evaluation pass's seconds per image against the training step's, and from them the
share of an SVHN epoch that the original's evaluations every 200 steps take (counts: config.yaml's
SVHN split, 598,388 training and 6,000 + 26,032 evaluated images, batch 128).

    python benchmarks/bench_recipe.py --depth 110 --steps 1 --repeats 5 --threads 1 --cpu-clock
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

import sdnet.train.device
from benchmarks import common
from sdnet import data
from sdnet.train import loop as train

SVHN_TRAIN, SVHN_EVAL, SVHN_EPOCHS = 598_388, 6_000 + 26_032, 50


def config(args: argparse.Namespace, precision: str) -> train.TrainConfig:
    return train.check_config(train.TrainConfig(
        data=".", out=".", dataset="cifar10", depth=args.depth, survival="linear", p_last=0.5,
        batch_size=args.batch_size, device="cpu", precision=precision))


class Step:
    """`steps` training steps of the trainer's loop (one call = one sample)."""

    def __init__(self, cfg: train.TrainConfig, images: np.ndarray, labels: np.ndarray) -> None:
        self.config, self.device = cfg, torch.device("cpu")
        self.model = train.build_model(cfg, self.device)
        self.optimizer, _ = train.build_optimizer(self.model, cfg)
        self.loader = data.DeviceLoader(images, labels, batch_size=cfg.batch_size,
                                        device=self.device, mean=[0.5] * 3, std=[0.25] * 3,
                                        augment=True, shuffle=True, seed=0, channels_last=True)
        self.epoch = 0

    def __call__(self) -> None:
        train.run_epoch(self.model, self.loader, self.optimizer, self.epoch, self.config,
                        self.device)
        self.epoch += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=110)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--loader-batches", type=int, default=20)
    p.add_argument("--no-force-bf16", action="store_true")
    p.add_argument("--cpu-clock", action="store_true",
                   help="time CPU seconds of this process (use with --threads 1 on a loaded machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    native = sdnet.train.device.cpu_has_bf16()
    if not args.no_force_bf16:
        sdnet.train.device.cpu_has_bf16 = lambda: True  # autocast on even without native bf16
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    steps = {"float32": Step(config(args, "float32"), images, labels),
             "bf16": Step(config(args, "bf16"), images, labels)}
    many = rng.integers(0, 256, (args.loader_batches * args.batch_size, 32, 32, 3),
                        dtype=np.uint8)
    mean_image = many.mean(axis=0).transpose(2, 0, 1) / 255.0
    loaders = {
        "loader-original": data.DeviceLoader(many, np.zeros(len(many)), batch_size=args.batch_size,
                                             device="cpu", mean=mean_image, std=0.25,
                                             augment=True, shuffle=True, channels_last=True,
                                             pad_fill="mean"),
        "loader-fast": data.DeviceLoader(many, np.zeros(len(many)), batch_size=args.batch_size,
                                         device="cpu", mean=[0.5] * 3, std=[0.25] * 3,
                                         augment=True, shuffle=True, channels_last=True,
                                         pad_fill="black"),
    }
    variants = {**steps, **{k: (lambda ld=ld: sum(1 for _ in ld.batches(0)))
                            for k, ld in loaders.items()}}
    # CPU seconds of this process (one torch thread): steadier than the wall clock on a machine
    # other processes load (benchmarks/common.py)
    clock = time.process_time if args.cpu_clock else time.perf_counter
    samples = common.interleave(variants, args.repeats, warmup=1, clock=clock)
    # Evaluation: float32 forward of eval batches, seconds per image (same model as float32).
    fp32 = steps["float32"]
    evaluation = data.DeviceLoader(images, labels, batch_size=500, device="cpu",
                                   mean=[0.5] * 3, std=[0.25] * 3, augment=False, shuffle=False,
                                   channels_last=True)
    eval_times = []
    for _ in range(args.repeats):
        start = clock()
        train.evaluate(fp32.model, evaluation, fp32.config, fp32.device)
        eval_times.append((clock() - start) / evaluation.num_samples)
    step_seconds = samples["float32"].median / args.steps
    eval_image = statistics.median(eval_times)
    svhn_steps = math.ceil(SVHN_TRAIN / args.batch_size)
    total = svhn_steps * SVHN_EPOCHS
    original_evals = total // 200  # main.lua: every 200 iterations, none at epoch ends
    # sdnet: the same, plus each epoch's end (a multiple of 200 there is that end's evaluation)
    sdnet_evals = original_evals + SVHN_EPOCHS - sum(
        1 for e in range(1, SVHN_EPOCHS + 1) if (e * svhn_steps) % 200 == 0)
    per_epoch_evals = sdnet_evals / SVHN_EPOCHS
    train_s = svhn_steps * step_seconds
    eval_s = per_epoch_evals * SVHN_EVAL * eval_image
    result = {
        "cpu": common.cpu_model(), "native_bf16": native, "threads": args.threads,
        "clock": "process CPU seconds" if args.cpu_clock else "wall",
        "depth": args.depth, "batch_size": args.batch_size, "steps_per_sample": args.steps,
        "variants": {k: s.summary() for k, s in samples.items()},
        "bf16_over_float32": common.paired_ratio(samples["bf16"], samples["float32"]),
        "loader_original_over_fast": common.paired_ratio(samples["loader-original"],
                                                         samples["loader-fast"]),
        "step_seconds_float32": step_seconds, "eval_seconds_per_image": eval_image,
        "svhn": {"steps_per_epoch": svhn_steps, "evaluations_per_epoch": per_epoch_evals,
                 "evaluations_original": original_evals, "evaluations_sdnet": sdnet_evals,
                 "train_seconds_per_epoch": train_s, "eval_seconds_per_epoch": eval_s,
                 "eval_share_of_epoch": eval_s / (train_s + eval_s),
                 "once_per_epoch_share": SVHN_EVAL * eval_image
                 / (train_s + SVHN_EVAL * eval_image)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
