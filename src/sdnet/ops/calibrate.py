"""How long one epoch of a run takes on this device, measured with the trainer's own code.

`sdnet estimate` needs seconds per epoch before anything has trained. Rather than a FLOP model,
this runs the real thing for a few seconds: the network of the run (`sdnet.train.loop.build_model`),
its optimizer, the on-device loader with the run's batch size, augmentation, amp and
channels_last, the training step `sdnet.train.loop.run_epoch` (stochastic depth drawing its gates as
in training, so the blocks it skips are skipped here too) and the evaluation pass
`sdnet.train.loop.evaluate` at the trainer's evaluation batch, on random images of the data set's
size and classes (speed does not depend on the pixels). Two warm-up steps are timed apart: their
extra time (allocation, cuDNN autotuning) is paid once per attempt, not per epoch. Then rounds
of up to an epoch's steps (and evaluation passes) until the budget is spent, at least 3: the
median round counts, so a passing load spike on a shared machine does not. The epoch's
checkpoint write is timed too.

With `copies` > 1 the grid's runs will train side by side (k per GPU, or `--cores` / `cpus`
trainers on a CPU): so many copies of the calibration run at once, in processes of their own
that start measuring together (a barrier), and the median copy's figures count; each trainer's
epoch is slower than alone (shared memory bandwidth, caches, the GPU's queue), and the estimate
must see that.

The projection per epoch: training steps x step time + evaluated images x time per image +
checkpoint write. Each measurement is kept in a cache keyed by the device and every setting
that changes speed (`sdnet.ops.estimate` owns the cache).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sdnet import data
from sdnet.errors import SdnetError
from sdnet.ops.calibration import Calibration
from sdnet.settings import TrainConfig, check_config
from sdnet.train import checkpoint
from sdnet.train import loop as trainer
from sdnet.train.device import resolve_device, setup_device

MIN_STEPS = 5
MAX_STEPS = 200
WARMUP_STEPS = 2
ROUNDS = 7  # timed rounds at most (the median counts)
MIN_ROUNDS = 3


def _config(settings: dict, device: str) -> TrainConfig:
    """The run's TrainConfig (lr lowered: random labels must not blow up; speed is the same)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kept = {k: v for k, v in settings.items() if k in names and k not in ("data", "out")}
    kept.update(device=device, lr=min(float(kept.get("lr") or 0.01), 0.01))
    return check_config(TrainConfig(data=Path("."), out=Path("."), **kept))


def _loader(count: int, image_size: int, classes: int, batch: int, device: torch.device,
            config: TrainConfig, train: bool, rng: np.random.Generator) -> Any:
    images = rng.integers(0, 256, (count, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, count)
    pixel = config.normalize == "pixel"  # a mean image and one std, as the run's loader
    return data.DeviceLoader(images, labels, batch_size=batch, device=device,
                             mean=np.full((3, image_size, image_size), 0.5) if pixel else [0.5] * 3,
                             std=0.25 if pixel else [0.25] * 3,
                             augment=bool(config.augment) and train, shuffle=train, seed=0,
                             channels_last=trainer.use_channels_last(config, device),
                             pad_fill=config.pad_fill)


def calibrate(settings: dict, *, device: str, train_images: int, eval_images: int,
              image_size: int = 32, num_classes: int = 10, threads: int | None = None,
              budget_seconds: float = 4.0, copies: int = 1,
              ready: Callable[[], Any] | None = None) -> Calibration:
    """Time the run's training step and evaluation pass on `device` for about `budget_seconds`
    each (at least MIN_STEPS steps, never more than an epoch's); `copies` > 1: that many side
    by side (see the module doc). `ready()` runs once the model is built, before any timing."""
    if copies > 1:
        return _side_by_side(copies, {
            "settings": settings, "device": device, "train_images": train_images,
            "eval_images": eval_images, "image_size": image_size, "num_classes": num_classes,
            "threads": threads, "budget_seconds": budget_seconds})
    config = _config(settings, device)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _measure(config, train_images, eval_images, image_size, num_classes,
                        budget_seconds, ready)
    finally:
        torch.set_num_threads(before)


_START: Any = None  # the side-by-side copies' barrier, in each copy's process


def _join(barrier: Any) -> None:
    global _START
    _START = barrier


def _one_copy(kwargs: dict) -> dict:
    settings = kwargs.pop("settings")
    return calibrate(settings, **kwargs, ready=lambda: _START.wait(timeout=600)).as_dict()


def _side_by_side(copies: int, kwargs: dict) -> Calibration:
    """`copies` calibrations at once, each in a process of its own (as the grid's trainers
    run); the median of each figure."""
    context = multiprocessing.get_context("spawn")  # no forked torch or CUDA state
    barrier = context.Barrier(copies)
    with ProcessPoolExecutor(copies, mp_context=context, initializer=_join,
                             initargs=(barrier,)) as pool:
        results = [future.result() for future in
                   [pool.submit(_one_copy, dict(kwargs)) for _ in range(copies)]]
    figures = {f.name: statistics.median(r[f.name] for r in results)
               for f in dataclasses.fields(Calibration)}
    figures["steps_timed"] = int(sum(r["steps_timed"] for r in results))
    return Calibration(**figures)


def _measure(config: TrainConfig, train_images: int, eval_images: int, image_size: int,
             num_classes: int, budget_seconds: float,
             ready: Callable[[], Any] | None = None) -> Calibration:
    torch_device = resolve_device(config.device)
    setup_device(torch_device)
    rng = np.random.default_rng(0)
    model = trainer.build_model(config, torch_device, num_classes)
    optimizer, _ = trainer.build_optimizer(model, config)
    if ready is not None:
        ready()
    model.gate.set_epoch(config.epochs // 2, config.epochs)  # epoch-linear: its mean survival
    batch = config.batch_size

    def steps(count: int, epoch: int) -> float:
        loader = _loader(count * batch, image_size, num_classes, batch, torch_device, config,
                         True, rng)
        try:
            return trainer.run_epoch(model, loader, optimizer, epoch, config, torch_device).seconds
        except SdnetError as err:  # a NaN on random labels would be a bug of ours, say so
            raise SdnetError(f"calibration step failed: {err}") from None

    warm = steps(WARMUP_STEPS, 0)
    # Rounds of at most an epoch's steps until the budget is spent; the median round's step
    # time (a shared machine's passing load spikes skew a mean).
    per_epoch = max(1, math.ceil(train_images / batch))
    count = min(per_epoch, MAX_STEPS,
                max(MIN_STEPS, math.ceil(budget_seconds / ROUNDS
                                         / max(warm / WARMUP_STEPS, 1e-4))))
    rounds, spent = [], 0.0
    while len(rounds) < ROUNDS and (spent < budget_seconds or len(rounds) < MIN_ROUNDS):
        seconds = steps(count, 1 + len(rounds))
        rounds.append(seconds / count)
        spent += seconds
    step = statistics.median(rounds)

    eval_batch = trainer.EVAL_BATCH[torch_device.type]
    probe = _loader(max(1, min(eval_images, eval_batch)), image_size, num_classes, eval_batch,
                    torch_device, config, False, rng)
    trainer.evaluate(model, probe, config, torch_device)  # warm-up
    passes, spent = [], 0.0
    while len(passes) < ROUNDS and (spent < budget_seconds / 4 or len(passes) < MIN_ROUNDS):
        start = time.perf_counter()
        trainer.evaluate(model, probe, config, torch_device)
        passes.append(time.perf_counter() - start)
        spent += passes[-1]
    per_image = statistics.median(passes) / probe.num_samples

    with tempfile.TemporaryDirectory(prefix="sdnet-calibrate-") as tmp:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        start = time.perf_counter()
        checkpoint.atomic_torch_save(state, Path(tmp) / "checkpoint.pt")
        saved = time.perf_counter() - start
    return Calibration(step_seconds=step, eval_image_seconds=per_image,
                       checkpoint_seconds=saved, warmup_seconds=max(warm - WARMUP_STEPS * step,
                                                                    0.0),
                       steps_timed=count * len(rounds))


def device_label(device: str) -> tuple[str, str]:
    """(kind, model) of the device `--device` names, e.g. ('cuda', 'NVIDIA H200'); SdnetError
    for a device that does not exist here."""
    from sdnet.train.device import device_name

    torch_device = resolve_device(device)
    return torch_device.type, device_name(torch_device)
