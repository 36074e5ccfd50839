"""`sdnet estimate`: what a grid will cost before it is launched, in device-hours.

For every (data set, network, variant) of the grid the config describes: its runs, epochs,
seconds per epoch and projected device-hours (runs x epochs x seconds per epoch), then the total
and, for N devices, the wall time. Seconds per epoch come from one of two places, and the
output says which:

- `measured`: the grid's own runs that have trained (finished or running, settings current):
  their device-seconds per epoch from accounting.json (`sdnet.train.accounting`), i.e. exactly what
  `sdnet status` will count;
- `calibration`: a few seconds of the real training step and evaluation pass on this machine's
  device at the run's real sizes (`sdnet.ops.calibrate`), cached per device and speed settings in
  `$SDNET_CACHE_DIR/calibration.json` (default `~/.cache/sdnet/`), so a second call is instant.

Runs that share a device are estimated as they will train: the calibration runs as many
copies side by side as the grid will (`concurrency`: `runs_per_gpu` per GPU; on a CPU
`--cores` / `train_resources.cpus` trainers, default the machine's CPUs), and a trainer's
device-hours are its wall time times its part of the device (`share`: 1/k of a GPU; its
threads over the machine's CPUs), which is what its accounting.json will count
(`sdnet.train.accounting.device_share`): a device shared by several runs is counted once.

The planning half here is torch-free; torch is imported only to calibrate or to find out what
`--device auto`/`cuda` is.
"""

from __future__ import annotations

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
from sdnet import grid
from sdnet.atomic import atomic_write_json
from sdnet.console import log
from sdnet.errors import SdnetError
from sdnet.ops.calibration import Calibration
from sdnet.train import accounting, runfolder

CACHE_FILE = "calibration.json"
CACHE_VERSION = 1
# Settings that change the speed of a training step or an evaluation pass (not the lr, the
# seed, the schedule): the cache key, with the device, threads and library versions.
SPEED_SETTINGS = ("depth", "arch", "shortcut", "survival", "p_last", "batch_size", "precision",
                  "channels_last", "augment", "normalize", "pad_fill")
# Before SVHN is prepared: its files' images (not class-balanced, so not in the registry).
SVHN_SPLITS = {"train": 73_257, "extra": 531_131, "test": 26_032}

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
    share: float = 1.0  # of the device per trainer (calibration; measured figures include it)

    @property
    def epoch_seconds(self) -> float | None:
        """Seconds per epoch, a run's one-off warm-up spread over its epochs."""
        if self.seconds_per_epoch is None:
            return None
        return self.seconds_per_epoch + self.startup_seconds / max(self.epochs, 1)

    @property
    def device_hours(self) -> float:
        return len(self.runs) * self.run_hours * self.share

    @property
    def run_hours(self) -> float:
        """One run's wall time."""
        return self.epochs * (self.epoch_seconds or 0.0) / 3600.0

    def as_json(self) -> dict:
        return {"dataset": self.dataset, "network": self.network, "depth": self.depth,
                "variant": self.variant, "runs": len(self.runs), "epochs": self.epochs,
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
    concurrency: int = 1  # trainers side by side on one device (the calibration's copies)
    share: float = 1.0  # of the device per calibrated trainer
    cores: int | None = None  # CPU: the local --cores the concurrency assumes

    @property
    def device_hours(self) -> float:
        return sum(line.device_hours for line in self.lines)

    def wall_hours(self, devices: int) -> float:
        """Wall time on `devices` devices, `concurrency` runs each, longest runs first (LPT)."""
        loads = [0.0] * max(1, devices * self.concurrency)
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
    elif fake is None and getattr(facts, "real_sizes", None):  # ImageNet: not balanced either
        per_split, source = dict(facts.real_sizes), f"the real {facts.title}"
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


def cache_key(settings: dict, sizes: Sizes, device: str, threads: int | None,
              copies: int = 1) -> str:
    """Everything that changes a calibration: device, threads, trainers side by side,
    versions, speed settings."""
    key = {name: settings.get(name) for name in SPEED_SETTINGS}
    if settings.get("survival") == "epoch-linear":
        key["epochs"] = settings.get("epochs")  # its mean survival depends on the schedule
    if copies > 1:  # (absent for one: the keys of earlier calibrations stay valid)
        key["copies"] = copies
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
    from sdnet.ops import calibrate

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind, name = calibrate.device_label(device)
    return device, kind, accounting.device_label(kind, name)


Calibrator = Callable[..., Any]


def side_by_side(kind: str, runs: int, threads: int, runs_per_gpu: int,
                 cores: int | None) -> tuple[int, float]:
    """(trainers side by side on one device, each one's share of it) as the grid will train:
    on a GPU `runs_per_gpu` (its slots, sdnet.jobs.gpus) holding 1/k each; on the CPU as many as
    `cores` (Snakemake's --cores; default the machine's CPUs) fit at `threads` each (the
    workflow caps a job's threads by --cores), each holding threads / CPUs of the machine."""
    if kind == "cuda":
        return max(1, min(runs_per_gpu, runs)), 1.0 / max(1, runs_per_gpu)
    cores = cores or accounting.available_cpus()
    copies = max(1, min(cores // max(1, threads), runs))
    return copies, accounting.device_share("cpu", threads=min(threads, cores))


def evaluations_per_epoch(train_images: int, batch_size: int, eval_every: int | None) -> float:
    """Evaluation passes per epoch on average: the epoch's end, plus one every `eval_every`
    steps of the run (setting eval_every; one falling on an epoch's last step is that end's)."""
    if not eval_every:
        return 1.0
    steps = math.ceil(train_images / batch_size)
    return 1.0 + max(steps - 1, 0) / int(eval_every)


def estimate(configfiles: Sequence[str | Path], *, device: str | None = None,
             threads: int | None = None, calibrator: Calibrator | None = None,
             budget_seconds: float = 4.0, cores: int | None = None) -> Estimate:
    """Seconds per epoch and device-hours for every line of the grid (see the module doc).
    `cores`: the --cores the grid will run with locally (default: this machine's CPUs)."""
    cfg = grid.load_config(configfiles)
    results = Path(cfg["results_dir"])
    device = device or str(cfg["train"].get("device") or "auto")
    threads = threads or int(cfg["train_resources"].get("cpus") or 1)
    where, kind, label = resolve(device)
    lines = lines_of(cfg)
    copies, share = side_by_side(kind, sum(len(line.runs) for line in lines), threads,
                                 int(cfg["train_resources"].get("runs_per_gpu") or 1), cores)
    if kind == "cpu":
        threads = min(threads, cores or accounting.available_cpus())  # as the workflow caps
    result = Estimate(lines, label, threads, cache=cache_dir() / CACHE_FILE,
                      concurrency=copies, share=share, cores=cores if kind == "cpu" else None)
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
        key = cache_key(settings, size, label, threads, copies)
        if isinstance(cache.get(key), dict):
            calibration = Calibration.from_dict(cache[key])
            result.cached += 1
        else:
            calibration = _calibrate(calibrator, settings, where, train_images, size, threads,
                                     budget_seconds, line, copies)
            cache[key] = {**calibration.as_dict(), "device": label, "threads": threads,
                          "copies": copies,
                          "network": line.network, "variant": line.variant,
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            result.calibrated += 1
        batch = int(settings["batch_size"])
        evaluations = evaluations_per_epoch(train_images, batch, settings.get("eval_every"))
        line.seconds_per_epoch = calibration.epoch_seconds(
            train_images, round((size.val + size.test) * evaluations), batch, kind)
        line.startup_seconds = calibration.warmup_seconds
        line.share = share
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
               size: Sizes, threads: int | None, budget: float, line: Line,
               copies: int = 1) -> Any:
    if calibrator is None:
        from sdnet.ops.calibrate import calibrate as calibrator
    together = f" ({copies} side by side)" if copies > 1 else ""
    log(f"sdnet: calibrating {line.dataset} {line.network} {line.variant} on {device}"
        f"{together} ...")
    return calibrator(settings, device=device, train_images=train_images,
                      eval_images=size.val + size.test, image_size=size.image_size,
                      num_classes=size.num_classes, threads=threads, budget_seconds=budget,
                      copies=copies)


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
        per = "one run" if result.concurrency == 1 else f"{result.concurrency} runs"
        lines.append(f"on {gpus} device{'s' if gpus > 1 else ''}: about "
                     f"{_duration(result.wall_hours(gpus))} wall time ({per} per device at a "
                     "time, longest first)")
    calibrated = [line for line in result.lines if line.source == "calibration"]
    if calibrated:
        lines.append(f"calibration: {result.device}, {result.threads} thread"
                     f"{'s' if result.threads != 1 else ''} ({result.calibrated} measured now, "
                     f"{result.cached} from {result.cache}); per epoch: "
                     f"{calibrated[0].note}" + (" ..." if len(calibrated) > 1 else ""))
        if result.concurrency > 1 or result.share < 1:
            cores = f" (--cores {result.cores})" if result.cores else ""
            lines.append(f"side by side: {result.concurrency} trainer"
                         f"{'s' if result.concurrency != 1 else ''} per device{cores}, "
                         f"calibrated together; each counts {result.share:.3g} of the device")
    if result.measured_devices:
        lines.append("measured: device-seconds per epoch of this grid's runs that have trained "
                     f"(on {', '.join(sorted(result.measured_devices))})")
    lines.append("device-hours: wall time of training and evaluation times the part of the "
                 "device each run holds (sdnet status counts the same)")
    return "\n".join(lines)


def as_json(result: Estimate, gpus: int | None = None) -> str:
    """A list: one object per (data set, network, variant), then {"total": true, ...}."""
    total: dict[str, Any] = {"total": True, "device_hours": result.device_hours,
                             "concurrency": result.concurrency, "share": result.share}
    if gpus:
        total.update(gpus=gpus, wall_hours=result.wall_hours(gpus))
    return json.dumps([*(line.as_json() for line in result.lines), total], indent=2)
