"""`sdnet estimate`: what a grid will cost before it is launched, in device-hours.

For every (data set, network, variant) of the grid the config describes: its runs, epochs,
seconds per epoch and projected device-hours (runs x epochs x seconds per epoch), then the total
and, for N devices, the wall time. Seconds per epoch come from one of two places, and the
output says which:

- `measured`: the grid's own runs that have trained (finished or running, settings current):
  their device-seconds per epoch from accounting.json (`sdnet.accounting`), i.e. exactly what
  `sdnet status` will count;
- `calibration`: a few seconds of the real training step and evaluation pass on this machine's
  device at the run's real sizes (`sdnet.calibrate`), cached per device and speed settings in
  `$SDNET_CACHE_DIR/calibration.json` (default `~/.cache/sdnet/`), so a second call is instant.

The planning half here is torch-free; torch is imported only to calibrate or to find out what
`--device auto`/`cuda` is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import importlib.metadata
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sdnet
from sdnet import accounting, grid, runfolder
from sdnet.console import log
from sdnet.errors import SdnetError
from sdnet.io import atomic_write_json

CACHE_FILE = "calibration.json"
CACHE_VERSION = 1
# Settings that change the speed of a training step or an evaluation pass (not the lr, the
# seed, the schedule): the cache key, with the device, threads and library versions.
SPEED_SETTINGS = ("depth", "arch", "shortcut", "survival", "p_last", "batch_size", "precision",
                  "channels_last", "augment", "normalize", "pad_fill")
# Before SVHN is prepared: its files' images (not class-balanced, so not in the registry).
SVHN_SPLITS = {"train": 73_257, "extra": 531_131, "test": 26_032}

@dataclass(frozen=True)
class Calibration:
    """Measured speeds of one run's settings on one device."""

    step_seconds: float  # one training step at the run's batch
    eval_image_seconds: float  # one image of the evaluation pass
    checkpoint_seconds: float  # the checkpoint written after every epoch
    warmup_seconds: float  # the first steps' extra time, once per attempt
    steps_timed: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> Calibration:
        return cls(**{f.name: value[f.name] for f in dataclasses.fields(cls)})

    def epoch_seconds(self, train_images: int, eval_images: int, batch_size: int,
                      device_kind: str) -> float:
        """One epoch: the steps (a partial last batch costs a whole step on a GPU, its part on
        a CPU), the evaluation of `eval_images`, the checkpoint."""
        steps = train_images / batch_size
        if device_kind == "cuda":
            steps = math.ceil(steps)
        return (steps * self.step_seconds + eval_images * self.eval_image_seconds
                + self.checkpoint_seconds)


@dataclass(frozen=True)
class Sizes:
    """Images per epoch of one data set: trained, evaluated (validation + test)."""

    train: int
    val: int
    test: int
    image_size: int
    num_classes: int
    source: str  # where the counts come from, for the output


@dataclass
class Line:
    """One (data set, network, variant) of the grid."""

    dataset: str
    depth: int
    network: str
    variant: str
    runs: list[grid.Run]
    epochs: int
    seconds_per_epoch: float | None = None
    source: str | None = None  # "measured" | "calibration"
    note: str = ""
    startup_seconds: float = 0.0  # once per run (calibration's warm-up)

    @property
    def epoch_seconds(self) -> float | None:
        """Seconds per epoch, a run's one-off warm-up spread over its epochs."""
        if self.seconds_per_epoch is None:
            return None
        return self.seconds_per_epoch + self.startup_seconds / max(self.epochs, 1)

    @property
    def device_hours(self) -> float:
        return len(self.runs) * self.epochs * (self.epoch_seconds or 0.0) / 3600.0

    @property
    def run_hours(self) -> float:
        return self.device_hours / len(self.runs) if self.runs else 0.0

    def as_json(self) -> dict:
        return {"dataset": self.dataset, "depth": self.depth, "variant": self.variant,
                "runs": len(self.runs), "epochs": self.epochs,
                "seconds_per_epoch": self.epoch_seconds, "source": self.source,
                "device_hours": self.device_hours}


@dataclass
class Estimate:
    lines: list[Line]
    device: str  # the calibration device ('cpu AMD EPYC 7B13'), or the measured runs' devices
    threads: int | None
    calibrated: int = 0  # new calibrations this call
    cached: int = 0
    cache: Path | None = None
    measured_devices: set[str] = field(default_factory=set)

    @property
    def device_hours(self) -> float:
        return sum(line.device_hours for line in self.lines)

    def wall_hours(self, devices: int) -> float:
        """Wall time on `devices` devices, one run each, longest runs first (LPT schedule)."""
        loads = [0.0] * max(1, devices)
        for hours in sorted((line.run_hours for line in self.lines for _ in line.runs),
                            reverse=True):
            heapq.heapreplace(loads, loads[0] + hours)
        return max(loads)


# ----------------------------------------------------------------------------- data sizes


def data_sizes(cfg: dict, dataset: str) -> Sizes:
    """The split sizes of a data set: its prepared meta.json, else the data set's (or its
    fake's) images per class (the registry, `sdnet.data`) with the config's validation split."""
    meta_path = Path(cfg["resources_dir"]) / "data" / dataset / "meta.json"
    entry = cfg["datasets"][dataset]
    facts = _dataset_facts(dataset)
    if meta_path.is_file():
        meta = runfolder.read_json(meta_path) or {}
        counts = meta.get("counts") or {}
        return Sizes(int(counts.get("train", 0)), int(counts.get("val", 0)),
                     int(counts.get("test", 0)), int(meta.get("image_size") or 32),
                     len(meta.get("classes") or ()) or facts.num_classes, str(meta_path))
    classes, image_size = facts.num_classes, int(getattr(facts, "image_size", 32) or 32)
    fake = entry.get("fake")
    if dataset == "svhn" and fake is None:  # not class-balanced: its files' sizes
        per_split, source = dict(SVHN_SPLITS), "the real SVHN"
    elif fake is not None:
        per_class = facts.fake_counts(fake.get("per_class"))
        per_split = {split: n * classes for split, n in per_class.items()}
        source = f"its fake ({', '.join(f'{n} {s}' for s, n in per_class.items())} per class)"
    else:
        per_split = {split: n * classes for split, n in facts.real_per_class.items()}
        source = f"the real {facts.title}"
    if not per_split.get("train"):
        raise SdnetError(f"the sizes of {dataset} are known once it is prepared: run "
                         f"`snakemake {meta_path}` first")
    test = per_split.get("test", per_split.get("val", 0))  # Tiny ImageNet: its val is our test
    if dataset == "svhn":
        per_digit = entry.get("val_per_class") or {"train": 400, "extra": 200}
        files = ("train", "extra") if entry.get("use_extra", True) else ("train",)
        val = classes * sum(per_digit.get(f, 0) for f in files)
        return Sizes(sum(per_split.get(f, 0) for f in files) - val, val, test, image_size,
                     classes, source)
    if "valid" in per_split:  # CINIC-10: validation from its own split
        val = per_split["valid"] if entry.get("val_size") is None else int(entry["val_size"])
        return Sizes(per_split["train"], val, test, image_size, classes, source)
    val = entry.get("val_size")
    val = per_split["train"] // 10 if val is None else int(val)  # prepare's default: a tenth
    return Sizes(per_split["train"] - val, val, test, image_size, classes, source)


def _dataset_facts(dataset: str) -> Any:
    from sdnet import spec

    return spec.dataset_spec(dataset)


# ----------------------------------------------------------------------------- the grid


def lines_of(cfg: dict) -> list[Line]:
    """The grid's runs grouped by (data set, network, variant), in the grid's order."""
    groups: dict[tuple, Line] = {}
    for run in grid.runs(cfg):
        key = (run.dataset, run.network, run.variant)
        if key not in groups:
            groups[key] = Line(run.dataset, run.depth, run.network, run.variant, [],
                               int(run.settings["epochs"]))
        groups[key].runs.append(run)
    return list(groups.values())


def measure(line: Line, results: Path) -> tuple[float, set[str]] | None:
    """Device-seconds per epoch of the line's runs that trained with their current settings."""
    seconds, epochs, devices = 0.0, 0, set()
    for run in line.runs:
        folder = results / run.folder
        if runfolder.run_status(folder, expected=run.settings).state == "stale":
            continue
        try:
            cost = accounting.spent(accounting.read_accounting(folder))
        except SdnetError:
            continue
        if cost.epochs:
            seconds += cost.device_seconds
            epochs += cost.epochs
            devices |= set(cost.by_device)
    return (seconds / epochs, devices) if epochs else None


# ----------------------------------------------------------------------------- calibration


def cache_dir() -> Path:
    """$SDNET_CACHE_DIR, else $XDG_CACHE_HOME/sdnet, else ~/.cache/sdnet."""
    if os.environ.get("SDNET_CACHE_DIR"):
        return Path(os.environ["SDNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sdnet"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_key(settings: dict, sizes: Sizes, device: str, threads: int | None) -> str:
    """Everything that changes a calibration: device, threads, versions, speed settings."""
    key = {name: settings.get(name) for name in SPEED_SETTINGS}
    if settings.get("survival") == "epoch-linear":
        key["epochs"] = settings.get("epochs")  # its mean survival depends on the schedule
    key.update(device=device, threads=threads, image_size=sizes.image_size,
               num_classes=sizes.num_classes, torch=_version("torch"), sdnet=sdnet.__version__,
               format=CACHE_VERSION)
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _read_cache(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def resolve(device: str) -> tuple[str, str, str]:
    """(device to calibrate on, its kind, its label): 'cpu' needs no torch; 'auto' and 'cuda'
    ask torch (one line for a device that does not exist here). `auto` never waits on the GPU
    lock: it calibrates on GPU 0 (or CUDA_VISIBLE_DEVICES' first)."""
    if device == "cpu":
        return "cpu", "cpu", accounting.device_label("cpu", accounting.cpu_model())
    from sdnet import calibrate

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind, name = calibrate.device_label(device)
    return device, kind, accounting.device_label(kind, name)


Calibrator = Callable[..., Any]


def evaluations_per_epoch(train_images: int, batch_size: int, eval_every: int | None) -> float:
    """Evaluation passes per epoch on average: the epoch's end, plus one every `eval_every`
    steps of the run (setting eval_every; one falling on an epoch's last step is that end's)."""
    if not eval_every:
        return 1.0
    steps = math.ceil(train_images / batch_size)
    return 1.0 + max(steps - 1, 0) / int(eval_every)


def estimate(configfiles: Sequence[str | Path], *, device: str | None = None,
             threads: int | None = None, calibrator: Calibrator | None = None,
             budget_seconds: float = 4.0) -> Estimate:
    """Seconds per epoch and device-hours for every line of the grid (see the module doc)."""
    cfg = grid.load_config(configfiles)
    results = Path(cfg["results_dir"])
    device = device or str(cfg["train"].get("device") or "auto")
    threads = threads or int(cfg["train_resources"].get("cpus") or 1)
    where, kind, label = resolve(device)
    lines = lines_of(cfg)
    result = Estimate(lines, label, threads, cache=cache_dir() / CACHE_FILE)
    cache = _read_cache(result.cache)
    sizes: dict[str, Sizes] = {}
    for line in lines:
        found = measure(line, results)
        if found is not None:
            line.seconds_per_epoch, devices = found
            line.source = "measured"
            line.note = ", ".join(sorted(devices))
            result.measured_devices |= devices
            continue
        if line.dataset not in sizes:
            sizes[line.dataset] = data_sizes(cfg, line.dataset)
        size = sizes[line.dataset]
        settings = line.runs[0].settings
        limit = settings.get("limit_train")
        train_images = min(size.train, int(limit)) if limit else size.train
        key = cache_key(settings, size, label, threads)
        if isinstance(cache.get(key), dict):
            calibration = Calibration.from_dict(cache[key])
            result.cached += 1
        else:
            calibration = _calibrate(calibrator, settings, where, train_images, size, threads,
                                     budget_seconds, line)
            cache[key] = {**calibration.as_dict(), "device": label, "threads": threads,
                          "network": line.network, "variant": line.variant,
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            result.calibrated += 1
        batch = int(settings["batch_size"])
        evaluations = evaluations_per_epoch(train_images, batch, settings.get("eval_every"))
        line.seconds_per_epoch = calibration.epoch_seconds(
            train_images, round((size.val + size.test) * evaluations), batch, kind)
        line.startup_seconds = calibration.warmup_seconds
        line.source = "calibration"
        line.note = f"{train_images} + {size.val + size.test} images ({size.source})"
        if evaluations != 1:
            line.note += f", {evaluations:.1f} evaluations per epoch"
    if result.calibrated:
        try:
            atomic_write_json(result.cache, cache)
        except OSError as err:
            log(f"sdnet: warning: could not write the calibration cache {result.cache} "
                f"({err.strerror or err}); the next call calibrates again")
    return result


def _calibrate(calibrator: Calibrator | None, settings: dict, device: str, train_images: int,
               size: Sizes, threads: int | None, budget: float, line: Line) -> Any:
    if calibrator is None:
        from sdnet.calibrate import calibrate as calibrator
    log(f"sdnet: calibrating {line.dataset} {line.network} {line.variant} on {device} ...")
    return calibrator(settings, device=device, train_images=train_images,
                      eval_images=size.val + size.test, image_size=size.image_size,
                      num_classes=size.num_classes, threads=threads, budget_seconds=budget)


# ----------------------------------------------------------------------------- output


def _hours(hours: float) -> str:
    return f"{hours:.2f}" if hours >= 0.01 or hours == 0 else "<0.01"


def _duration(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def render(result: Estimate, gpus: int | None = None) -> str:
    """The table, then the totals and where each figure came from."""
    from tabulate import tabulate

    header = ["data set", "network", "variant", "runs", "epochs", "s/epoch", "source",
              "device-hours"]
    body = [[line.dataset, line.network, line.variant, len(line.runs), line.epochs,
             "-" if line.epoch_seconds is None else f"{line.epoch_seconds:.2f}",
             line.source, _hours(line.device_hours)] for line in result.lines]
    lines = [tabulate(body, header, tablefmt="simple", disable_numparse=True)]
    runs = sum(len(line.runs) for line in result.lines)
    lines.append(f"total: {runs} runs, {_hours(result.device_hours)} device-hours")
    if gpus:
        lines.append(f"on {gpus} device{'s' if gpus > 1 else ''}: about "
                     f"{_duration(result.wall_hours(gpus))} wall time (one run per device at a "
                     "time, longest first)")
    calibrated = [line for line in result.lines if line.source == "calibration"]
    if calibrated:
        lines.append(f"calibration: {result.device}, {result.threads} thread"
                     f"{'s' if result.threads != 1 else ''} ({result.calibrated} measured now, "
                     f"{result.cached} from {result.cache}); per epoch: "
                     f"{calibrated[0].note}" + (" ..." if len(calibrated) > 1 else ""))
    if result.measured_devices:
        lines.append("measured: device-seconds per epoch of this grid's runs that have trained "
                     f"(on {', '.join(sorted(result.measured_devices))})")
    lines.append("device-hours: wall time of training and evaluation times devices, one run "
                 "per device (sdnet status counts the same)")
    return "\n".join(lines)


def as_json(result: Estimate, gpus: int | None = None) -> str:
    """A list: one object per (data set, network, variant), then {"total": true, ...}."""
    total: dict[str, Any] = {"total": True, "device_hours": result.device_hours}
    if gpus:
        total.update(gpus=gpus, wall_hours=result.wall_hours(gpus))
    return json.dumps([*(line.as_json() for line in result.lines), total], indent=2)
