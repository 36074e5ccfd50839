"""What a run cost: the device it trained on and its device-seconds over every attempt (torch-free).

A grid is paid for in device-hours, and a run of a grid is trained in several attempts (a Slurm
walltime, a `scancel`, a Ctrl-C, a resume by hand). Each attempt adds its own record to the run
folder's `accounting.json`; nothing is ever reset by a resume. An attempt's device-seconds are the
wall time of its epoch loop (training, evaluation and the checkpoint, from the first epoch it
starts to the last moment it was seen) times the devices it held: 1 for a trainer alone on a GPU,
1/k for a trainer sharing a GPU with k - 1 others (`train_resources.runs_per_gpu`, passed to the
trainer as $SDNET_RUNS_PER_GPU), since k trainers together hold one GPU for that time; on the
CPU its threads over the CPUs it may run on, so two one-thread trainers side by side on two
cores count the machine once, not twice (a Slurm job's CPUs are its allocation: 1 there). An attempt killed hard loses at most `WRITE_SECONDS` of its count: the record is rewritten
(atomically) after every epoch and at least once a minute while a step runs.

Records of another settings fingerprint (the run folder was started over with other settings)
no longer count for the run; their sum stays visible as `discarded_device_seconds`.

The trainer writes the file (`Ledger`); `sdnet status`, `sdnet estimate` and the report read it
(`read_accounting`, `Spent`), none of them importing torch.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sdnet.atomic import atomic_write_json
from sdnet.console import log
from sdnet.errors import SdnetError
from sdnet.jobs.gpus import RUNS_PER_GPU_ENV
from sdnet.train import runfolder

ACCOUNTING = runfolder.ACCOUNTING
WRITE_SECONDS = 60.0  # a running attempt's record is at most this old
FORMAT_VERSION = 1


def _now_text(now: float | None = None) -> str:
    moment = datetime.now(timezone.utc) if now is None else datetime.fromtimestamp(now, timezone.utc)
    return moment.isoformat(timespec="seconds")


def runs_per_gpu(env: Mapping[str, str] | None = None) -> int:
    """k from $SDNET_RUNS_PER_GPU (1 when unset); a bad value is one line."""
    text = (os.environ if env is None else env).get(RUNS_PER_GPU_ENV, "").strip()
    if not text:
        return 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 8:
        raise SdnetError(f"${RUNS_PER_GPU_ENV}={text!r}: runs per GPU must be an integer "
                         "from 1 to 8")
    return value


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: a Slurm job's allocation, else all)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def device_share(kind: str, env: Mapping[str, str] | None = None, *,
                 threads: int | None = None, cpus: int | None = None) -> float:
    """The part of a device one trainer holds: 1/k on a GPU shared by k trainers; on the CPU
    `threads` over `cpus` (default: available_cpus()), at most 1; 1 when threads is unknown."""
    if kind == "cuda":
        return 1.0 / runs_per_gpu(env)
    if kind != "cpu" or not threads:
        return 1.0
    return min(1.0, int(threads) / max(1, cpus or available_cpus()))


def cpu_model() -> str:
    """The CPU's model from /proc/cpuinfo (platform.processor() is often just x86_64)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "cpu"


def device_label(kind: str, name: str) -> str:
    """'cuda NVIDIA H200', 'cpu AMD EPYC 7B13': the kind of device, then its model."""
    return f"{kind} {name}".strip()


# ----------------------------------------------------------------------------- reading


def read_accounting(folder: str | os.PathLike) -> dict | None:
    """accounting.json, None if absent; SdnetError naming it if malformed."""
    return runfolder.read_json(Path(folder) / ACCOUNTING)


@dataclass(frozen=True)
class Spent:
    """A run's cost so far, from its accounting.json."""

    device: str | None  # the latest attempt's device ('cuda NVIDIA H200'), None if no record
    device_seconds: float  # over every attempt with the run's current settings
    epochs: int  # epochs those attempts finished (for the device pace)
    attempts: int
    by_device: dict[str, float]  # device label -> device-seconds

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600.0

    @property
    def seconds_per_epoch(self) -> float | None:
        """Device-seconds per finished epoch (evaluation and a cut attempt's loss included)."""
        return self.device_seconds / self.epochs if self.epochs else None


NOTHING_SPENT = Spent(None, 0.0, 0, 0, {})


def spent(record: dict | None) -> Spent:
    """The totals of an accounting.json record (a missing one spent nothing recorded)."""
    if not record:
        return NOTHING_SPENT
    attempts = [a for a in record.get("attempts") or [] if isinstance(a, dict)]
    by_device: dict[str, float] = {}
    for attempt in attempts:
        label = str(attempt.get("device") or "unknown")
        by_device[label] = by_device.get(label, 0.0) + float(attempt.get("device_seconds") or 0)
    return Spent(device=record.get("device"),
                 device_seconds=float(sum(by_device.values())),
                 epochs=int(sum(int(a.get("epochs") or 0) for a in attempts)),
                 attempts=len(attempts), by_device=by_device)


# ----------------------------------------------------------------------------- writing


class Ledger:
    """The trainer's side: one attempt's record, kept up to date in accounting.json.

    `Ledger(folder, fingerprint, kind, name)` right before the epoch loop adds this attempt;
    `tick()` (after every step: cheap, writes at most every `WRITE_SECONDS`), `epoch(train_s,
    eval_s)` after each epoch's checkpoint and `close()` at the end keep it current. Failing to
    write it (a full disk) costs a warning, never the run: the checkpoint write reports the disk.
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: str, kind: str, name: str, *,
                 start_epoch: int = 0, devices: int = 1, share: float | None = None,
                 threads: int | None = None, writes: bool = True, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.path = Path(folder) / ACCOUNTING
        self.writes = writes  # False on the ranks other than 0 of a run of several
        self.clock, self.wall_clock = clock, wall_clock
        self.kind, self.name = kind, name
        self.label = device_label(kind, name)
        self.share = device_share(kind, threads=threads) if share is None else float(share)
        self.devices = int(devices)
        previous = self._previous()
        self.fingerprint = fingerprint
        self.kept = [a for a in previous.get("attempts") or []
                     if isinstance(a, dict) and a.get("fingerprint") == fingerprint]
        dropped = [a for a in previous.get("attempts") or []
                   if isinstance(a, dict) and a.get("fingerprint") != fingerprint]
        self.discarded = float(previous.get("discarded_device_seconds") or 0.0) + sum(
            float(a.get("device_seconds") or 0.0) for a in dropped)
        self.started = self.clock()
        self.attempt: dict[str, Any] = {
            "fingerprint": fingerprint, "host": socket.gethostname(), "pid": os.getpid(),
            "started": _now_text(self.wall_clock()), "updated": None,
            "device": self.label, "devices": self.devices, "share": self.share,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "start_epoch": int(start_epoch), "epochs": 0,
            "train_seconds": 0.0, "eval_seconds": 0.0, "wall_seconds": 0.0,
            "device_seconds": 0.0,
        }
        self._written = -float("inf")
        self._warned = False
        self.write()

    def _previous(self) -> dict:
        """The record so far; a torn or foreign file is started afresh (with a warning)."""
        try:
            return read_accounting(self.path.parent) or {}
        except SdnetError as err:
            log(f"sdnet: warning: {err}; its device-seconds are not carried over")
            return {}

    @property
    def device_seconds(self) -> float:
        """This run's device-seconds: earlier attempts plus this one so far."""
        return sum(float(a.get("device_seconds") or 0.0) for a in self.kept) + \
            self.attempt["device_seconds"]

    def record(self) -> dict:
        attempts = [*self.kept, self.attempt]
        total = self.device_seconds
        return {"format_version": FORMAT_VERSION, "device": self.label,
                "device_kind": self.kind, "device_name": self.name, "devices": self.devices,
                "share": self.share, "fingerprint": self.fingerprint,
                "device_seconds": total, "device_hours": total / 3600.0,
                "attempts": attempts, "discarded_device_seconds": self.discarded}

    def _update(self) -> None:
        wall = max(self.clock() - self.started, 0.0)
        self.attempt.update(wall_seconds=wall, updated=_now_text(self.wall_clock()),
                            device_seconds=wall * self.devices * self.share)

    def write(self) -> None:
        """Bring this attempt's record up to now and write the file atomically."""
        self._update()
        if not self.writes:
            self._written = self.clock()
            return
        try:
            atomic_write_json(self.path, self.record())
        except OSError as err:
            if not self._warned:
                log(f"sdnet: warning: could not write {self.path} ({err.strerror or err}); "
                    "this attempt's device time may be missing from it")
                self._warned = True
        self._written = self.clock()

    def tick(self) -> None:
        """Called after every training step: rewrite the record when it is a minute old."""
        if self.clock() - self._written >= WRITE_SECONDS:
            self.write()

    def epoch(self, train_seconds: float, eval_seconds: float) -> None:
        """One more epoch finished (and checkpointed) in this attempt."""
        self.attempt["epochs"] += 1
        self.attempt["train_seconds"] += float(train_seconds)
        self.attempt["eval_seconds"] += float(eval_seconds)
        self.write()

    def close(self) -> None:
        self.write()

    def summary_fields(self) -> dict:
        """What summary.json records of the run's cost (runs.csv gets the same columns)."""
        total = self.device_seconds
        return {"device_kind": self.kind, "device_count": self.devices,
                "device_share": self.share, "device_seconds": total,
                "device_hours": total / 3600.0, "attempts": len(self.kept) + 1}
