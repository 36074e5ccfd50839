"""One training run: loop, checkpoint/resume, metrics (contract: docs/DESIGN.md, `sdnet.train`).

Design notes (why the loop looks the way it does):
- No host-device sync inside an epoch: loss sum, error count and a "first non-finite step" marker
  are device tensors, read once per epoch (or every `log_every` steps). The data loader and the
  stochastic-depth gates never sync either (gates come from a CPU generator).
- Resume is exact: loader batches depend only on (seed, epoch), and every other piece of state
  (weights, optimizer, scheduler, all RNGs, the gate generator, metrics history, best-so-far) is in
  `checkpoint.pt`, written atomically after every epoch. On CPU a resumed run writes the same
  metrics.csv as an uninterrupted one (apart from `epoch_seconds`).
- `epoch_seconds` times the training pass only (what stochastic depth speeds up); evaluation is
  timed separately in the log line and counts towards the ETA.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import math
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sdnet
from sdnet import gpus, spec
from sdnet.errors import SdnetError
from sdnet.io import atomic_open, atomic_write_json, atomic_write_text
from sdnet.spec import METRICS_COLUMNS

CHECKPOINT_FORMAT = 1
# Settings that never change what a run computes: left out of the fingerprint (device too,
# so a run may resume on another card) and, except device, out of summary["settings"].
NOT_SETTINGS = ("out", "restart", "on_mismatch", "log_every")
NOT_FINGERPRINTED = NOT_SETTINGS + ("device",)
EVAL_BATCH = {"cuda": 1024, "cpu": 500}


@dataclass
class TrainConfig:
    """Every setting of one run; field names are the `sdnet train` flag names."""

    data: Path
    dataset: str
    depth: int
    out: Path
    arch: str | None = None
    shortcut: str = "A"
    survival: str = "linear"
    p_last: float = 0.5
    variant: str | None = None
    seed: int = 0
    epochs: int = 500
    batch_size: int = 128
    lr: float = 0.1
    milestones: list[int] = field(default_factory=lambda: [250, 375])
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    warmup_epochs: int = 0
    limit_train: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    restart: bool = False
    on_mismatch: str = "error"
    log_every: int = 0


# ----------------------------------------------------------------------------- small helpers


def log(message: str) -> None:
    """Progress goes to stderr (stdout stays free for machine-readable output)."""
    print(message, file=sys.stderr, flush=True)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temp file + os.replace, so a kill never leaves a torn file."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def _fmt_minutes(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# ----------------------------------------------------------------------------- settings


def check_config(config: TrainConfig) -> TrainConfig:
    """Validate settings up front (one clear SdnetError each) and normalise types."""
    config = dataclasses.replace(config, data=Path(config.data), out=Path(config.out),
                                 milestones=sorted(int(m) for m in config.milestones))
    spec.check_dataset(config.dataset)
    spec.resolve_arch(config.depth, config.arch)
    spec.check_survival(config.survival, config.p_last)
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr}
    for name, value in positive.items():
        if not value > 0:
            raise SdnetError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if config.limit_train is not None and config.limit_train < 1:
        raise SdnetError(f"--limit-train must be positive, got {config.limit_train}")
    if config.warmup_epochs < 0 or config.log_every < 0:
        raise SdnetError("--warmup-epochs and --log-every must be >= 0")
    if config.weight_decay < 0 or config.momentum < 0 or config.gamma <= 0:
        raise SdnetError("--weight-decay and --momentum must be >= 0, --gamma > 0")
    if config.nesterov and config.momentum == 0:
        raise SdnetError("Nesterov momentum needs --momentum > 0 (or pass --no-nesterov)")
    if config.shortcut not in ("A", "B"):
        raise SdnetError(f"--shortcut must be A or B, got {config.shortcut!r}")
    if config.on_mismatch not in ("error", "restart"):
        raise SdnetError(f"--on-mismatch must be error or restart, got {config.on_mismatch!r}")
    return config


def settings_of(config: TrainConfig) -> dict:
    """summary.json "settings": every field but out/restart/on_mismatch/log_every, JSON-ready."""
    settings = {}
    for key, value in dataclasses.asdict(config).items():
        if key not in NOT_SETTINGS:
            settings[key] = str(value) if isinstance(value, Path) else value
    settings["arch"] = spec.resolve_arch(config.depth, config.arch)
    return settings


def fingerprint(settings: dict, meta: dict) -> str:
    """Hash of everything that changes results. The data enter by content (meta.json: md5 of the
    source archive, split, counts), not by path, so a moved data folder still resumes."""
    kept = {k: v for k, v in settings.items() if k not in NOT_FINGERPRINTED and k != "data"}
    kept["data_meta"] = meta
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_mismatch(old: dict, new: dict) -> str:
    """'lr 0.1 -> 0.05, seed 0 -> 1': what differs between two settings dicts."""
    keys = sorted((set(old) | set(new)) - set(NOT_FINGERPRINTED) - {"data"})
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return ", ".join(diffs) or "the prepared data set differs"


# ----------------------------------------------------------------------------- device


_GPU_LOCK: gpus.GpuLock | None = None


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; on a multi-GPU machine without CUDA_VISIBLE_DEVICES,
    `auto` locks a GPU no other `sdnet train` holds (kept for the life of the process)."""
    global _GPU_LOCK
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if count > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
            if _GPU_LOCK is None:
                _GPU_LOCK = gpus.acquire_gpu(count)
                log(f"sdnet: using GPU {_GPU_LOCK.index} (lock {_GPU_LOCK.path})")
            return torch.device("cuda", _GPU_LOCK.index)
        return torch.device("cuda", 0)
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SdnetError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type not in ("cpu", "cuda"):
        raise SdnetError(f"unsupported --device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SdnetError(f"--device {name} asked for, but CUDA is not available here")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise SdnetError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
        device = torch.device("cuda", index)
    return device


def device_name(device: torch.device) -> str:
    """GPU model, or the CPU model from /proc/cpuinfo (platform.processor() is often just x86_64)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "cpu"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked for (no GradScaler needed for bf16); nothing on CPU."""
    if config.amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """channels_last helps on CPU too (ResNet-110 step ~0.71 vs ~0.9 s, shared/REFERENCE.md)."""
    return bool(config.channels_last)


# ----------------------------------------------------------------------------- model, optimizer


class StepSchedule:
    """MultiStepLR's factor (gamma ** milestones passed), after `warmup` epochs at 1/10.

    A plain class rather than a lambda so LambdaLR's state_dict holds only plain values.
    """

    def __init__(self, milestones: list[int], gamma: float, warmup: int = 0) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup = int(warmup)

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return 0.1
        return self.gamma ** bisect.bisect_right(self.milestones, epoch)


def build_model(config: TrainConfig, device: torch.device) -> nn.Module:
    """Seeded init (torch.manual_seed first) so the same seed gives the same network."""
    from sdnet import models

    torch.manual_seed(config.seed)
    model = models.build_model(config.depth, config.arch, shortcut=config.shortcut,
                               survival=config.survival, p_last=config.p_last)
    model.seed_gates(config.seed)
    model = model.to(device)
    if use_channels_last(config, device):
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(model: nn.Module, config: TrainConfig
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
    schedule = StepSchedule(config.milestones, config.gamma, config.warmup_epochs)
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
    """Whole splits on the device; train is shuffled and augmented from (seed, epoch) only."""
    from sdnet import data

    images, labels = prepared.train
    if config.limit_train is not None:
        images, labels = images[:config.limit_train], labels[:config.limit_train]
    common = {"device": device, "mean": prepared.mean, "std": prepared.std,
                  "channels_last": use_channels_last(config, device)}
    train = data.DeviceLoader(images, labels, batch_size=config.batch_size, augment=True,
                              shuffle=True, seed=config.seed, **common)
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
    seconds: float


def _progress(total: int, desc: str) -> Any:
    """A tqdm bar on an interactive terminal only (logs under Snakemake/Slurm stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _raise_non_finite(epoch: int, step: int, steps: int) -> None:
    raise SdnetError(f"training loss became NaN/inf at epoch {epoch + 1}, step {step + 1} of "
                     f"{steps}; lower --lr or check the data")


def run_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, epoch: int,
              config: TrainConfig, device: torch.device) -> EpochStats:
    """One pass over the training split without host syncs (bar the one at the end)."""
    model.train()
    model.reset_gate_stats()
    steps = len(loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    no_bad_step = torch.tensor(steps, device=device)
    first_bad = no_bad_step.clone()
    seen = 0
    bar = _progress(steps, f"epoch {epoch + 1}")
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader.batches(epoch)):
        with autocast(config, device):
            logits = model(x)
        loss = compute_loss(logits, y)
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        loss = loss.detach()
        first_bad = torch.minimum(first_bad, torch.where(torch.isfinite(loss), no_bad_step, step))
        loss_sum += loss * y.shape[0]
        wrong += (logits.detach().argmax(1) != y).sum()
        seen += y.shape[0]
        if bar is not None:
            bar.update()
        if config.log_every and (step + 1) % config.log_every == 0 and step + 1 < steps:
            _log_steps(epoch, step, steps, loss_sum, wrong, seen, first_bad, config)
    bad = int(first_bad)  # the epoch's one sync
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    mean_loss = float(loss_sum) / max(seen, 1)
    if bad < steps or not math.isfinite(mean_loss):
        _raise_non_finite(epoch, bad if bad < steps else steps - 1, steps)
    computed, total = model.gate_stats()
    return EpochStats(loss=mean_loss, error=100.0 * int(wrong) / max(seen, 1),
                      blocks_computed=computed / total if total else 1.0, seconds=seconds)


def _log_steps(epoch: int, step: int, steps: int, loss_sum: torch.Tensor, wrong: torch.Tensor,
               seen: int, first_bad: torch.Tensor, config: TrainConfig) -> None:
    """The optional every-N-steps line (one sync each); also stops early on a NaN."""
    bad = int(first_bad)
    if bad < steps:
        _raise_non_finite(epoch, bad, steps)
    log(f"  epoch {epoch + 1}/{config.epochs} step {step + 1}/{steps} "
        f"loss {float(loss_sum) / seen:.4f} err {100.0 * int(wrong) / seen:.2f}%")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, config: TrainConfig, device: torch.device) -> float:
    """Error in percent with every block run and scaled by its survival probability (Eq. 5)."""
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    for x, y in loader.batches(0):
        with autocast(config, device):
            logits = model(x)
        wrong += (logits.argmax(1) != y).sum()
    return 100.0 * int(wrong) / loader.num_samples


# ----------------------------------------------------------------------------- RNG state


def capture_rng(model: nn.Module) -> dict:
    """Every RNG a run touches, as tensors and plain types (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
        "gates": model.gate_generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, model: nn.Module) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    model.gate_generator.set_state(state["gates"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


# ----------------------------------------------------------------------------- run folder files


@dataclass
class RunState:
    """What survives an epoch boundary besides weights and optimizer."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_error: float | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def add(self, row: dict) -> None:
        """Append an epoch row and update best-so-far (lowest val error, earliest on ties)."""
        self.history.append(row)
        val = row["val_error"]
        if val is not None and (self.best_val_error is None or val < self.best_val_error):
            self.best_epoch, self.best_val_error = row["epoch"], val


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoint.pt"


def save_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: RunState, fp: str, settings: dict) -> None:
    atomic_torch_save({
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fp,
        "settings": settings,
        "epoch": state.epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": capture_rng(model),
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_val_error": state.best_val_error,
    }, checkpoint_path(out))


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint on the CPU; SdnetError if it is not one of ours."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file means the same to the user
        raise SdnetError(f"{path} is unreadable ({type(err).__name__}); delete it or pass "
                         "--restart") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SdnetError(f"{path} is not an sdnet checkpoint (format {CHECKPOINT_FORMAT}); "
                         "delete it or pass --restart")
    return ckpt


def load_checkpoint(ckpt: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> RunState:
    """Put weights, optimizer, scheduler and RNGs back; return the history and best-so-far."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng(ckpt["rng"], model)
    return RunState(history=list(ckpt["history"]), best_epoch=ckpt["best_epoch"],
                    best_val_error=ckpt["best_val_error"])


def _csv_value(value: Any) -> str:
    """repr for floats (round-trips exactly, so resumed runs compare bit for bit)."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def write_metrics(out: Path, history: list[dict]) -> None:
    """The whole table every epoch, atomically: a reader never sees half a row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
    for row in history:
        writer.writerow([_csv_value(row[c]) for c in METRICS_COLUMNS])
    atomic_write_text(out / "metrics.csv", buffer.getvalue())


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


def build_summary(config: TrainConfig, settings: dict, fp: str, model: nn.Module,
                  state: RunState, device: torch.device) -> dict:
    """summary.json as docs/DESIGN.md lists it (plus the settings fingerprint)."""
    history = state.history
    last = history[-1]
    best_epoch = state.best_epoch if state.best_epoch is not None else last["epoch"]
    at_best = history[best_epoch - 1]
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
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": device_name(device),
        "torch_device": str(device),
        "versions": versions(),
        "epochs": len(history),
        "best_epoch": best_epoch,
        "best_val_error": state.best_val_error,
        "test_error_at_best": at_best["test_error"],
        "final_test_error": last["test_error"],
        "train_seconds": train_seconds,
        "mean_epoch_seconds": train_seconds / len(history),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "survival_probabilities": [float(p) for p in model.survival_probabilities()],
        "expected_block_fraction": float(model.expected_block_fraction()),
        "mean_blocks_computed": sum(r["blocks_computed"] for r in history) / len(history),
    }


def write_final_files(out: Path, model: nn.Module, summary: dict) -> None:
    """model.pt, then summary.json last (its presence marks the run complete), then drop the
    checkpoint."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_torch_save(weights, out / "model.pt")
    atomic_write_json(out / "summary.json", summary)
    checkpoint_path(out).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the run


def _existing_summary(out: Path) -> dict | None:
    """The finished run's summary, or None (also for an unreadable one, which is dropped)."""
    path = out / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        log(f"sdnet: {path} is unreadable; treating the run as unfinished")
        path.unlink()
        return None
    return summary


def _stale(path: Path, old_settings: dict, settings: dict, config: TrainConfig) -> None:
    """A run-folder file written with other settings: discard it or refuse, per on_mismatch."""
    change = describe_mismatch(old_settings, settings)
    if config.on_mismatch == "restart":
        log(f"sdnet: {path} was written with other settings ({change}); starting over")
        return
    raise SdnetError(f"{path} was written with other settings ({change}); pass --restart or "
                     f"--on-mismatch restart to start over, or use another --out")


RUN_FILES = ("metrics.csv", "summary.json", "model.pt", "checkpoint.pt")


def _clear_run(out: Path) -> None:
    for name in ("summary.json", "checkpoint.pt"):
        (out / name).unlink(missing_ok=True)


def _remove_stale_temp_files(out: Path) -> None:
    """Temp files of atomic writes cut short by SIGTERM/SIGKILL (e.g. a Slurm walltime)."""
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def prepare_run_folder(config: TrainConfig, settings: dict, fp: str) -> tuple[dict | None, dict | None]:
    """Decide between 'already complete', 'resume' and 'fresh start'.

    Returns (finished summary, checkpoint): at most one is not None.
    """
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out)
    if config.restart:
        _clear_run(out)
        return None, None
    summary = _existing_summary(out)
    if summary is not None:
        if summary.get("fingerprint") == fp:
            checkpoint_path(out).unlink(missing_ok=True)
            return summary, None
        _stale(out / "summary.json", summary.get("settings", {}), settings, config)
        _clear_run(out)
        return None, None
    path = checkpoint_path(out)
    if not path.is_file():
        return None, None
    try:
        ckpt = read_checkpoint(path)
    except SdnetError as err:
        if config.on_mismatch != "restart":
            raise
        log(f"sdnet: {err}; starting over")
        _clear_run(out)
        return None, None
    if ckpt["fingerprint"] != fp:
        _stale(path, ckpt.get("settings", {}), settings, config)
        _clear_run(out)
        return None, None
    return None, ckpt


def _epoch_line(row: dict, epochs: int, eval_seconds: float, eta: float) -> str:
    val = "-" if row["val_error"] is None else f"{row['val_error']:.2f}%"
    return (f"epoch {row['epoch']}/{epochs} lr {row['lr']:.4g} loss {row['train_loss']:.4f} "
            f"train err {row['train_error']:.2f}% val err {val} test err "
            f"{row['test_error']:.2f}% blocks {100 * row['blocks_computed']:.1f}% "
            f"time {row['epoch_seconds']:.1f}s (+{eval_seconds:.1f}s eval) "
            f"ETA {_fmt_minutes(eta)}")


def train_epoch(epoch: int, model: nn.Module, loaders: Loaders, optimizer: torch.optim.Optimizer,
                scheduler: Any, config: TrainConfig, device: torch.device) -> tuple[dict, float]:
    """Train, evaluate and step the schedule: the epoch's metrics.csv row and eval seconds."""
    lr = optimizer.param_groups[0]["lr"]
    model.set_epoch(epoch, config.epochs)
    stats = run_epoch(model, loaders.train, optimizer, epoch, config, device)
    eval_start = time.perf_counter()
    val = evaluate(model, loaders.val, config, device) if loaders.val is not None else None
    test = evaluate(model, loaders.test, config, device)
    eval_seconds = time.perf_counter() - eval_start
    scheduler.step()
    row = {"epoch": epoch + 1, "lr": lr, "train_loss": stats.loss, "train_error": stats.error,
           "val_error": val, "test_error": test, "epoch_seconds": stats.seconds,
           "blocks_computed": stats.blocks_computed}
    return row, eval_seconds


def _setup_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)


def train(config: TrainConfig, *, on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train one network as `config` says; return the summary (also written to summary.json).

    Re-running on the same folder resumes from checkpoint.pt or, for a finished run with the same
    settings, returns its summary at once (before taking a device). `on_epoch_end(epoch)`
    (1-based) is a hook for tests.
    """
    config = check_config(config)
    prepared = load_data(config)
    settings = settings_of(config)
    fp = fingerprint(settings, prepared.meta)
    summary, ckpt = prepare_run_folder(config, settings, fp)
    if summary is not None:
        log(f"sdnet: run in {config.out} is already complete ({summary.get('epochs')} epochs); "
            "nothing to do")
        return summary
    device = resolve_device(config.device)
    _setup_device(device)
    loaders = build_loaders(config, prepared, device)
    del prepared
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(config, device)
    optimizer, scheduler = build_optimizer(model, config)
    state = RunState()
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, scheduler)
        log(f"sdnet: resuming from checkpoint at epoch {state.epochs_done} of {config.epochs}")
        del ckpt
    write_metrics(config.out, state.history)
    log(f"sdnet: {config.dataset} ResNet-{config.depth} ({settings['arch']}), survival "
        f"{config.survival} p_L={config.p_last}, seed {config.seed}, "
        f"{loaders.train.num_samples} training images, {len(loaders.train)} steps/epoch on "
        f"{device} ({device_name(device)})")
    session_start, first_epoch = time.perf_counter(), state.epochs_done
    for epoch in range(first_epoch, config.epochs):
        row, eval_seconds = train_epoch(epoch, model, loaders, optimizer, scheduler, config, device)
        state.add(row)
        write_metrics(config.out, state.history)
        save_checkpoint(config.out, model, optimizer, scheduler, state, fp, settings)
        per_epoch = (time.perf_counter() - session_start) / (epoch + 1 - first_epoch)
        log(_epoch_line(row, config.epochs, eval_seconds, per_epoch * (config.epochs - epoch - 1)))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    summary = build_summary(config, settings, fp, model, state, device)
    write_final_files(config.out, model, summary)
    log(f"sdnet: done: test error {summary['final_test_error']:.2f}% (at best val epoch "
        f"{summary['best_epoch']}: {summary['test_error_at_best']:.2f}%), "
        f"{_fmt_minutes(summary['train_seconds'])} training; wrote {config.out}")
    return summary
