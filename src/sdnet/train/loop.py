"""One training run: the loop (contract: docs/DESIGN.md, `sdnet.train.loop`).

Design notes (why the loop looks the way it does):
- No host-device sync inside an epoch: loss sum, error count and a "first non-finite step" marker
  are device tensors, read once per epoch (or every `log_every` steps). The data loader and the
  stochastic-depth gates never sync either (gates come from a CPU generator).
- Resume is exact: loader batches depend only on (seed, epoch), and every other piece of state
  (weights, optimizer, scheduler, all RNGs, the gate generator, metrics history, best-so-far) is in
  `checkpoint.pt` (`sdnet.train.checkpoint`), written atomically after every epoch. On CPU a resumed run
  writes the same metrics.csv as an uninterrupted one (apart from `epoch_seconds`), bf16 or not.
- One trainer per run folder: `train()` holds `sdnet.train.runfolder.RunLock` for the whole run.
- `epoch_seconds` times the training pass only (what stochastic depth speeds up); evaluation is
  timed separately in the log line and counts towards the ETA.
- The original code's recipe (docs/recipe.md) by default: float32 training, and evaluation in
  float32 whatever the training precision (`precision` bf16 autocasts the training step only);
  lr drops at the 1-based milestone epoch (`lr_drop`); with `eval_every` N, validation and test
  error every N steps (counted over the run, as main.lua's iterCounter) besides each epoch's
  end, all in evaluations.csv; the summary's test error is the one at the lowest validation
  error of all evaluations. A step evaluation replays on resume (checkpoints are per epoch),
  draws no random numbers and leaves the batch-norm statistics alone (eval mode).

Below this module: `settings` (TrainConfig, fingerprint), `device` (device, bf16), and the run
folder's life in one object, `lifecycle.RunFolder` (open, per-epoch writes, finish; it uses
`runfolder`, `checkpoint`, `events` and `accounting`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import importlib.metadata
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

import sdnet
from sdnet.console import log
from sdnet.distributed.replica import Replica
from sdnet.distributed.world import EveryRankError
from sdnet.errors import SdnetError
from sdnet.settings import (
    TrainConfig,
    check_config,
    fingerprint,
    settings_of,
)
from sdnet.train import device as devices
from sdnet.train import runfolder
from sdnet.train.checkpoint import capture_rng, load_checkpoint, save_checkpoint
from sdnet.train.device import device_name, peak_memory_mb, resolve_device
from sdnet.train.events import EpochEvents
from sdnet.train.gradients import EpochGradients, GradientMeter
from sdnet.train.lifecycle import RunFolder
from sdnet.train.runfolder import RunLock, RunState

if TYPE_CHECKING:
    from sdnet.models import GatedNetwork

__all__ = ["TrainConfig", "check_config", "fingerprint", "resolve_device", "settings_of", "train"]

EVAL_BATCH = {"cuda": 1024, "cpu": 500}


# ----------------------------------------------------------------------------- small helpers


def _fmt_minutes(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The training step's bf16 autocast (precision bf16, on CUDA and on CPUs with native bf16:
    sdnet.train.device); nothing in float32. Evaluation never autocasts."""
    return devices.autocast(config.precision == "bf16", device)


def bf16_active(config: TrainConfig, device: torch.device) -> bool:
    """Whether training runs in bf16 here (summary.json's `amp_used`)."""
    return devices.amp_active(config.precision == "bf16", device)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    return devices.use_channels_last(config.channels_last, device)


def milestone_warning(config: TrainConfig) -> str | None:
    """Milestones that never lower the lr (past the last epoch; with lr_drop late, at it too):
    legitimate in a short run with the paper's schedule, so a warning, not a refusal."""
    last = config.epochs if config.lr_drop == "original" else config.epochs - 1
    late = [m for m in config.milestones if m > last]
    if not late:
        return None
    where = "past" if config.lr_drop == "original" else "at or past"
    return (f"sdnet: warning: milestone(s) {' '.join(map(str, late))} {where} the last epoch "
            f"({config.epochs}); the lr never drops there")


# ----------------------------------------------------------------------------- model, optimizer


class StepSchedule:
    """The lr factor of 0-based `epoch`: gamma ** (milestones reached), after `warmup` epochs at
    1/10. `lr_drop` "original": milestone M lowers the lr from 1-based epoch M on, as main.lua's
    `if epoch < maxEpochs * f` with 1-based epochs (milestones 250 375: epochs 1-249 at lr,
    250-374 at lr/10, 375-500 at lr/100); "late": from 1-based epoch M + 1 on (MultiStepLR).

    A plain class rather than a lambda so LambdaLR's state_dict holds only plain values.
    """

    def __init__(self, milestones: list[int], gamma: float, warmup: int = 0,
                 lr_drop: str = "late") -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup = int(warmup)
        self.shift = 1 if lr_drop == "original" else 0  # 0-based epoch -> the epoch compared

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return 0.1
        return self.gamma ** bisect.bisect_right(self.milestones, epoch + self.shift)


def build_model(config: TrainConfig, device: torch.device, num_classes: int = 10,
                image_size: int = 32) -> GatedNetwork:
    """Seeded init (torch.manual_seed first) so the same seed gives the same network; the gate
    seeded with the run's seed too. `image_size`: the prepared images' (32, or 64)."""
    from sdnet import models

    torch.manual_seed(config.seed)
    model = models.build_model(config.depth, config.arch, num_classes=num_classes,
                               image_size=image_size, shortcut=config.shortcut,
                               survival=config.survival, p_last=config.p_last,
                               bn_init=config.bn_init, conv_init=config.conv_init)
    model.gate.manual_seed(config.seed)
    model = model.to(device)
    if use_channels_last(config, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(model: GatedNetwork, config: TrainConfig
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The paper's SGD (Nesterov, dampening 0) and a per-epoch step schedule."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov,
                                dampening=0)
    # Every parameter starts with a zero gradient and zero_grad keeps it a tensor, so a block
    # dropped for a step still gets weight decay and momentum, as in the original Torch code (its
    # flattened-parameter SGD updates all weights every step); a None gradient would make SGD skip
    # it. Doing it here, before any resume, keeps resumed runs identical to uninterrupted ones.
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    schedule = StepSchedule(config.milestones, config.gamma, config.warmup_epochs,
                            config.lr_drop)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


# ----------------------------------------------------------------------------- data


@dataclass
class Loaders:
    train: Any
    val: Any | None
    test: Any
    meta: dict


def load_data(config: TrainConfig) -> Any:
    """The prepared splits in host memory (sdnet.data.Prepared), checked against --dataset."""
    from sdnet import data

    prepared = data.load_prepared(config.data)
    if prepared.meta.get("dataset") != config.dataset:
        raise SdnetError(f"{config.data} holds {prepared.meta.get('dataset')!r}, "
                         f"not --dataset {config.dataset}")
    return prepared


def build_loaders(config: TrainConfig, prepared: Any, device: torch.device) -> Loaders:
    """Whole splits on the device; train is shuffled and augmented from (seed, epoch) only.
    Normalised by the whole training split's figures (`normalize`), shifted images bordered as
    `pad_fill` says."""
    from sdnet import data

    images, labels = prepared.train
    mean, std = prepared.normalization(config.normalize)
    if config.limit_train is not None:
        images, labels = images[:config.limit_train], labels[:config.limit_train]
    common = {"device": device, "mean": mean, "std": std,
              "channels_last": use_channels_last(config, device)}
    augment = check_config(config).augment  # None resolved to the data set's default
    # ImageNet's train split is JPEG bytes (sdnet.data.jpegs), decoded per batch on the device;
    # its own normalisation is fb.resnet.torch's, so pad_fill is the arrays' loader's alone.
    if type(images).__name__ == "JpegImages":
        train = data.JpegLoader(images, labels, batch_size=config.batch_size, augment=augment,
                                shuffle=True, seed=config.seed, **common)
    else:
        train = data.DeviceLoader(images, labels, batch_size=config.batch_size, augment=augment,
                                  shuffle=True, seed=config.seed, pad_fill=config.pad_fill,
                                  **common)
    eval_batch = EVAL_BATCH[device.type]

    def plain(split: tuple) -> Any:
        return data.DeviceLoader(*split, batch_size=eval_batch, augment=False, shuffle=False,
                                 **common)

    val = plain(prepared.val) if prepared.val is not None and len(prepared.val[1]) else None
    return Loaders(train, val, plain(prepared.test), prepared.meta)


# ----------------------------------------------------------------------------- epoch


def compute_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in fp32 (a module-level function so tests can inject a NaN)."""
    return F.cross_entropy(logits.float(), targets)


@dataclass
class EpochStats:
    loss: float
    error: float  # percent
    blocks_computed: float  # fraction of gated blocks whose branch ran
    seconds: float  # the training pass, step evaluations left out
    gradients: EpochGradients | None = None  # first-convolution |grad| per block (issue 18)
    evaluations: list[list] | None = None  # [step, val, test] of the step evaluations (eval_every)
    eval_seconds: float = 0.0  # spent in the step evaluations


def _progress(total: int, desc: str) -> Any:
    """A tqdm bar on an interactive terminal only (logs under Snakemake/Slurm stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _raise_non_finite(epoch: int, step: int, steps: int, every_rank: bool = False) -> None:
    """`every_rank`: found in numbers summed over the ranks, so every rank raises it alike."""
    error = EveryRankError if every_rank else SdnetError
    raise error(f"training loss became NaN/inf at epoch {epoch + 1}, step {step + 1} of "
                f"{steps}; lower --lr or check the data")


def run_epoch(model: GatedNetwork, loader: Any, optimizer: torch.optim.Optimizer, epoch: int,
              config: TrainConfig, device: torch.device,
              heartbeat: Callable[[], None] | None = None,
              gradients: GradientMeter | None = None,
              replica: Replica | None = None,
              step_eval: Callable[[], tuple[float | None, float]] | None = None) -> EpochStats:
    """One pass over the training split without host syncs (bar the one at the end).
    `heartbeat()` runs after every step (host-side only: the run lock's mtime); `gradients`
    (sdnet.train.gradients) adds each step's gradients between backward and the SGD step. `replica`:
    this rank's part in a run of several (sdnet.distributed; None = the whole run).
    `step_eval()` -> (val, test) error runs after every `config.eval_every`-th step of the run
    (steps counted from its start) but an epoch's last (the epoch-end evaluation is that one);
    it syncs, and leaves the model in training mode."""
    replica = replica or Replica.single()
    model.train()
    model.gate.reset_stats()
    steps = len(loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    # A fill on the device, not torch.tensor(steps, device=...): that is a blocking host copy.
    no_bad_step = torch.full((), steps, dtype=torch.int64, device=device)
    first_bad = no_bad_step.clone()
    seen = 0
    every = config.eval_every if step_eval is not None else 0
    evaluations: list[list] = []
    eval_seconds = 0.0
    bar = _progress(steps, f"epoch {epoch + 1}")
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader.batches(epoch)):
        with autocast(config, device):
            logits = model(x)
        loss = compute_loss(logits, y)
        optimizer.zero_grad(set_to_none=False)
        replica.backward(loss, step, y.shape[0])  # several ranks: weighted by the rank's share
        replica.after_backward(epoch, step)  # several ranks: gradients summed over the ranks
        if gradients is not None:  # on the device; the gates' flags are host-side bools
            gradients.after_backward(model.gate.last_active)
        optimizer.step()
        loss = loss.detach()
        first_bad = torch.minimum(first_bad, torch.where(torch.isfinite(loss), no_bad_step, step))
        loss_sum += loss * y.shape[0]
        wrong += (logits.detach().argmax(1) != y).sum()
        seen += y.shape[0]
        if bar is not None:
            bar.update()
        if heartbeat is not None:
            heartbeat()
        if config.log_every and (step + 1) % config.log_every == 0 and step + 1 < steps:
            _log_steps(epoch, step, steps, loss_sum, wrong, seen, first_bad, config)
        done = epoch * steps + step + 1  # steps of the run so far (main.lua's iterCounter)
        if every and done % every == 0 and step + 1 < steps:
            eval_start = time.perf_counter()
            val, test = step_eval()
            model.train()
            evaluations.append([done, val, test])
            eval_seconds += time.perf_counter() - eval_start
    loss_sum, wrong, first_bad, seen = replica.reduce_epoch(loss_sum, wrong, first_bad, seen,
                                                            epoch)
    # The epoch's one read-back: everything it logs, packed into one device tensor.
    parts = [loss_sum.double().reshape(1), wrong.double().reshape(1),
             first_bad.double().reshape(1)]
    if gradients is not None:
        parts.append(gradients.pending_sums())
    values = read_back(torch.cat(parts))
    seconds = time.perf_counter() - start - eval_seconds  # training only
    loss_total, wrong_count, bad = values[0], round(values[1]), round(values[2])
    figures = gradients.epoch_figures(values[3:]) if gradients is not None else None
    if bar is not None:
        bar.close()
    mean_loss = loss_total / max(seen, 1)
    if bad < steps or not math.isfinite(mean_loss):
        _raise_non_finite(epoch, bad if bad < steps else steps - 1, steps, every_rank=True)
    computed, total = model.gate.stats()
    return EpochStats(loss=mean_loss, error=100.0 * wrong_count / max(seen, 1),
                      blocks_computed=computed / total if total else 1.0, seconds=seconds,
                      gradients=figures, evaluations=evaluations, eval_seconds=eval_seconds)


def read_back(values: torch.Tensor) -> list[float]:
    """A device tensor's values on the host: one device-to-host copy (a sync on CUDA). Its
    own function so the sync-counting test sees every read-back, on the CPU too."""
    return values.to("cpu", copy=True).tolist()


def _log_steps(epoch: int, step: int, steps: int, loss_sum: torch.Tensor, wrong: torch.Tensor,
               seen: int, first_bad: torch.Tensor, config: TrainConfig) -> None:
    """The optional every-N-steps line (one sync each); also stops early on a NaN."""
    bad = int(first_bad)
    if bad < steps:
        _raise_non_finite(epoch, bad, steps)
    log(f"  epoch {epoch + 1}/{config.epochs} step {step + 1}/{steps} "
        f"loss {float(loss_sum) / seen:.4f} err {100.0 * int(wrong) / seen:.2f}%")


def evaluate(model: GatedNetwork, loader: Any, config: TrainConfig, device: torch.device,
             replica: Replica | None = None) -> float:
    """Error in percent with every block run and scaled by its survival probability (Eq. 5).
    Always in float32, as the original (no autocast whatever `precision` trains in: the argmax
    of bf16 logits flips near-ties). With several ranks each evaluates its part of the split
    and the counts are summed."""
    return evaluate_errors(model, loader, config, device, replica)[0]


@torch.no_grad()
def evaluate_errors(model: GatedNetwork, loader: Any, config: TrainConfig, device: torch.device,
                    replica: Replica | None = None) -> tuple[float, float]:
    """(top-1, top-5) error in percent, as `evaluate` (ImageNet reports both; with 5 classes
    or fewer top-5 error is 0)."""
    replica = replica or Replica.single()
    model.eval()
    wrong = torch.zeros(2, dtype=torch.int64, device=device)
    for x, y in loader.batches(0):
        logits = eval_logits(model, x)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit5 = (top == y[:, None]).any(dim=1)
        wrong[0] += (logits.argmax(1) != y).sum()
        wrong[1] += (~hit5).sum()
    wrong = replica.sum(wrong).tolist()
    return 100.0 * wrong[0] / loader.num_samples, 100.0 * wrong[1] / loader.num_samples


def eval_logits(model: GatedNetwork, x: torch.Tensor) -> torch.Tensor:
    """The evaluation forward pass: float32 even inside an enclosing autocast region."""
    with torch.autocast(x.device.type, enabled=False):
        return model(x.float())


# ----------------------------------------------------------------------------- summary


def _installed_version(package: str) -> str | None:
    """From the package metadata: importing torchvision just for its version takes seconds."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": _installed_version("torchvision"), "numpy": np.__version__,
            "sdnet": sdnet.__version__}


def build_summary(config: TrainConfig, settings: dict, fp: str, model: GatedNetwork,
                  state: RunState, device: torch.device, num_classes: int = 10,
                  world_size: int = 1) -> dict:
    """summary.json as docs/DESIGN.md lists it (plus the settings fingerprint)."""
    history = state.history
    last = history[-1]
    best_epoch = state.best_epoch if state.best_epoch is not None else last["epoch"]
    at_best = history[best_epoch - 1]  # top-5 is recorded at epoch ends (ImageNet: eval_every 0)
    train_seconds = sum(row["epoch_seconds"] for row in history)
    return {
        "settings": settings,
        "fingerprint": fp,
        "variant": config.variant or config.survival,
        "dataset": config.dataset,
        "depth": config.depth,
        "arch": settings["arch"],
        "seed": config.seed,
        "survival": config.survival,
        "p_last": config.p_last,
        "num_classes": num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": device_name(device),
        "torch_device": str(device),
        "amp_used": bf16_active(config, device),  # the training step's bf16; evaluation: float32
        "world_size": world_size,  # ranks (processes, one device each) that trained the run
        "versions": versions(),
        "epochs": len(history),
        "best_epoch": best_epoch,
        "best_val_error": state.best_val_error,
        # steps of the run done at the best evaluation (None: before evaluations.csv existed)
        "best_step": state.best_step,
        "evaluations": sum(len(runfolder.epoch_evaluations(row)) for row in history),
        "test_error_at_best": state.test_error_at_best(),
        "final_test_error": last["test_error"],
        "test_error_top5_at_best": at_best.get("test_error_top5"),  # None: a row from before it
        "final_test_error_top5": last.get("test_error_top5"),
        "train_seconds": train_seconds,
        "mean_epoch_seconds": train_seconds / len(history),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "survival_probabilities": [float(p) for p in model.gate.probabilities],
        "expected_block_fraction": float(model.gate.expected_fraction()),
        "mean_blocks_computed": sum(r["blocks_computed"] for r in history) / len(history),
    }


# ----------------------------------------------------------------------------- the run


def _epoch_line(row: dict, epochs: int, eval_seconds: float, eta: float) -> str:
    val = "-" if row["val_error"] is None else f"{row['val_error']:.2f}%"
    grad = "" if row.get("grad_first_conv") is None else f"grad {row['grad_first_conv']:.3g} "
    return (f"epoch {row['epoch']}/{epochs} lr {row['lr']:.4g} loss {row['train_loss']:.4f} "
            f"train err {row['train_error']:.2f}% val err {val} test err "
            f"{row['test_error']:.2f}% blocks {100 * row['blocks_computed']:.1f}% {grad}"
            f"time {row['epoch_seconds']:.1f}s (+{eval_seconds:.1f}s eval) "
            f"ETA {_fmt_minutes(eta)}")


def train_epoch(epoch: int, model: GatedNetwork, loaders: Loaders, optimizer: torch.optim.Optimizer,
                scheduler: Any, config: TrainConfig, device: torch.device,
                heartbeat: Callable[[], None] | None = None,
                gradients: GradientMeter | None = None,
                replica: Replica | None = None) -> tuple[dict, float]:
    """Train, evaluate and step the schedule: the epoch's metrics (history) row and eval
    seconds (the row also holds the per-block gradients, which metrics.csv leaves out)."""
    replica = replica or Replica.single()
    lr = optimizer.param_groups[0]["lr"]
    model.gate.set_epoch(epoch, config.epochs)

    def both() -> tuple[tuple[float | None, float | None], tuple[float, float]]:
        """((val, val top-5), (test, test top-5)) error."""
        replica.sync_buffers(model)  # several ranks: rank 0's batch-norm statistics everywhere
        val = (evaluate_errors(model, loaders.val, config, device, replica)
               if loaders.val is not None else (None, None))
        return val, evaluate_errors(model, loaders.test, config, device, replica)

    def top1() -> tuple[float | None, float]:
        (val, _), (test, _) = both()
        return val, test

    stats = run_epoch(model, loaders.train, optimizer, epoch, config, device, heartbeat,
                      gradients, replica, step_eval=top1 if config.eval_every else None)
    eval_start = time.perf_counter()
    (val, val5), (test, test5) = both()
    eval_seconds = time.perf_counter() - eval_start + stats.eval_seconds
    scheduler.step()
    steps_done = (epoch + 1) * len(loaders.train)
    row = {"epoch": epoch + 1, "lr": lr, "train_loss": stats.loss, "train_error": stats.error,
           "val_error": val, "test_error": test, "epoch_seconds": stats.seconds,
           "blocks_computed": stats.blocks_computed, "val_error_top5": val5,
           "test_error_top5": test5,
           runfolder.EVALUATIONS_KEY: [*(stats.evaluations or []), [steps_done, val, test]]}
    if stats.gradients is not None:
        row.update(stats.gradients.row())  # grad_first_conv, block_gradients
    return row, eval_seconds


def train(config: TrainConfig, *, on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train one network as `config` says; return the summary (also written to summary.json).

    Holds the run folder's lock throughout (a second trainer on the folder gets RunBusyError at
    once). Re-running on the same folder resumes from checkpoint.pt or, for a finished run with
    the same settings, returns its summary at once (before taking a device). `on_epoch_end(epoch)`
    (1-based) is a hook for tests.
    """
    config = check_config(config)
    replica = Replica.start(config)  # one rank of many (torchrun, srun, --nproc), or the run
    try:
        if not (config.data / "meta.json").is_file():
            load_data(config)  # the data package's one line; no run folder made for it
        # Rank 0 alone holds the lock and writes the folder; before loading the arrays, so a
        # busy folder fails at once.
        with replica.run_lock(lambda: RunLock(config.out)) as lock:
            if lock.unlocked_reason:
                log(f"sdnet: warning: {lock.unlocked_reason}; make sure no other `sdnet train` "
                    "uses this run folder")
            return _train_locked(config, load_data(config), lock, on_epoch_end, replica)
    finally:
        replica.close()


def _train_locked(config: TrainConfig, prepared: Any, lock: RunLock,
                  on_epoch_end: Callable[[int], None] | None, replica: Replica) -> dict:
    settings = settings_of(config)
    fp = fingerprint(settings, prepared.meta)
    folder = RunFolder(config, settings, fp, lock, world_size=replica.size,
                       writes=replica.is_main)
    summary, ckpt = replica.agree(folder.open)  # rank 0 decides, the others get its answer
    folder.adopt(ckpt)
    if summary is not None:
        log(f"sdnet: run in {config.out} is already complete ({summary.get('epochs')} epochs); "
            "nothing to do")
        return summary
    warning = milestone_warning(config)
    if warning:
        log(warning)
    device = replica.device or resolve_device(config.device)
    devices.setup_device(device)
    num_classes = len(prepared.meta.get("classes") or range(10))
    image_size = int(prepared.train[0].shape[1])  # (N, H, W, 3): 32, or 64 (stride-2 stem)
    loaders = replica.shard(build_loaders(config, prepared, device))  # each rank's part
    del prepared
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = replica.prepare(build_model(config, device, num_classes, image_size),
                            bool(config.sync_bn))
    optimizer, scheduler = build_optimizer(model, config)
    meter = GradientMeter(model.blocks)  # gradient strength per block (sdnet.train.gradients)
    state = RunState()
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, scheduler, meter, replica.world.rank)
        log(f"sdnet: resuming from checkpoint at epoch {state.epochs_done} of {config.epochs}")
        del ckpt
    amp = ("bf16 autocast training, float32 evaluation" if bf16_active(config, device)
           else "float32")
    ranks = f", {replica.size} ranks" if replica.many else ""
    log(f"sdnet: {config.dataset} ResNet-{config.depth} ({settings['arch']}), survival "
        f"{config.survival} p_L={config.p_last}, seed {config.seed}, "
        f"{loaders.train.num_samples} training images, {len(loaders.train)} steps/epoch on "
        f"{device} ({device_name(device)}, {amp}{ranks})")
    # Cost: this attempt's device-seconds, added to the run's earlier attempts (accounting.json);
    # rank 0 keeps the ledger for every rank (its devices counted by the world size).
    folder.begin(state, device.type, device_name(device),
                 lambda: replica.events(lambda: EpochEvents(config.out, state.epochs_done, log)),
                 threads=torch.get_num_threads())
    try:
        session_start, first_epoch = time.perf_counter(), state.epochs_done
        for epoch in range(first_epoch, config.epochs):
            row, eval_seconds = train_epoch(epoch, model, loaders, optimizer, scheduler, config,
                                            device, folder.heartbeat, meter, replica)
            state.add(row)
            rank_rng = replica.gather_rng(lambda: capture_rng(model))  # several ranks
            folder.end_epoch(row, state, eval_seconds, functools.partial(
                save_checkpoint, config.out, model, optimizer, scheduler, state, fp, settings,
                meter, world_size=replica.size, rank_rng=rank_rng))
            per_epoch = (time.perf_counter() - session_start) / (epoch + 1 - first_epoch)
            log(_epoch_line(row, config.epochs, eval_seconds,
                            per_epoch * (config.epochs - epoch - 1)))
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    finally:
        folder.close()
    summary = folder.finish(model, state, build_summary(config, settings, fp, model, state,
                                                        device, num_classes, replica.size))
    summary = replica.share(summary)
    log(f"sdnet: done: test error {summary['final_test_error']:.2f}% (at best val epoch "
        f"{summary['best_epoch']}: {summary['test_error_at_best']:.2f}%), "
        f"{_fmt_minutes(summary['train_seconds'])} training; wrote {config.out}")
    return summary
