"""`sdnet status`: where a grid stands, read from its run folders (torch-free, pandas-free).

A grid runs for days; this is the one look at all of it: which runs are done, which train now and
when they will end, which were interrupted or no longer match the config. The config -> runs
expansion is `sdnet.grid`'s (the one the workflow uses), the meaning of a run folder's files is
`sdnet.train.runfolder`'s; this module only joins the two and lays them out.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdnet import layout, networks
from sdnet.errors import SdnetError
from sdnet.train import accounting, runfolder

STATES = ("done", "running", "interrupted", "stale", "not started")


@dataclass
class RunRow:
    """One line of the view (and one object of `--json`): a run is (dataset, network, variant,
    seed); `arch` (resolved) and `depth` are its network's."""

    dataset: str
    network: str
    arch: str | None
    depth: int
    variant: str
    seed: int
    state: str
    epochs_done: int
    epochs: int | None
    best_val_error: float | None
    test_error: float | None
    eta_seconds: float | None
    train_seconds: float
    folder: str
    holder: dict | None = None
    mismatch: list[str] = field(default_factory=list)
    world_size: int = 1  # ranks (GPUs) the run trains on
    # Cost (sdnet.train.accounting): the device of the latest attempt ('cuda NVIDIA H200'), the
    # device-hours of every attempt so far, and those still needed (filled by `_fill_left`).
    device: str | None = None
    device_hours: float = 0.0
    device_hours_left: float | None = None

    @property
    def epoch_seconds(self) -> float | None:
        """Mean training seconds per epoch so far (None before the first epoch)."""
        return self.train_seconds / self.epochs_done if self.epochs_done else None

    @property
    def device_epoch_seconds(self) -> float | None:
        """Device-seconds per epoch so far (evaluation included), None before an epoch."""
        if not self.epochs_done or not self.device_hours:
            return None
        return self.device_hours * 3600.0 / self.epochs_done


def _row(folder: Path, key: dict, expected: dict | None, epochs: int | None,
         now: float) -> RunRow:
    """A run's line; `key` holds dataset, network, arch, depth, variant, seed."""
    status = runfolder.run_status(folder, expected=expected, now=now)
    device, device_hours = _spent(folder, status)
    return RunRow(dataset=key["dataset"], network=key["network"], arch=key["arch"],
                  depth=int(key["depth"]), variant=key["variant"], seed=int(key["seed"]),
                  state=status.state, epochs_done=status.epochs_done,
                  epochs=status.epochs if status.epochs is not None else epochs,
                  best_val_error=status.best_val_error, test_error=status.test_error,
                  eta_seconds=status.eta_seconds if status.state == "running" else None,
                  train_seconds=status.train_seconds, folder=str(folder), holder=status.holder,
                  mismatch=list(status.mismatch), world_size=status.world_size,
                  device=device, device_hours=device_hours)


def _spent(folder: Path, status: runfolder.RunStatus) -> tuple[str | None, float]:
    """The run's device and device-hours from accounting.json; a run trained before sdnet kept
    one counts its epochs' training seconds on the device its summary names."""
    try:
        record = accounting.read_accounting(folder)
    except SdnetError:
        record = None
    if record:
        cost = accounting.spent(record)
        return cost.device, cost.device_hours
    if not status.epochs_done:
        return None, 0.0
    try:
        summary = runfolder.read_summary(folder) or {}
    except SdnetError:
        summary = {}
    kind = str(summary.get("torch_device") or "").split(":")[0]
    device = accounting.device_label(kind, summary["device"]) if summary.get("device") else None
    return device, status.train_seconds / 3600.0


def grid_rows(configfiles: Sequence[str | Path], now: float | None = None) -> list[RunRow]:
    """Every run of the grid the config files describe, merged the way Snakemake merges them."""
    from sdnet import grid

    cfg = grid.load_config(configfiles)
    results = Path(cfg["results_dir"])
    now = time.time() if now is None else now
    return _fill_left([_row(results / run.folder, _key(run), run.settings,
                            run.settings.get("epochs"), now) for run in grid.runs(cfg)])


def _key(run) -> dict:
    return {"dataset": run.dataset, "network": run.network, "arch": run.arch,
            "depth": run.depth, "variant": run.variant, "seed": run.seed}


_RUN_FILES = {runfolder.RUN_INFO, runfolder.SUMMARY, runfolder.METRICS, runfolder.CHECKPOINT,
              runfolder.FINAL_STATE}


def _network_of(depth: int, arch: str | None) -> str:
    """The network name of a recorded depth and family (one not registered here: as named)."""
    try:
        return networks.network_name(int(depth), arch)
    except networks.SpecError:
        return f"resnet{depth}" if arch is None else f"{arch}-resnet{depth}"


def _identity(folder: Path) -> dict | None:
    """dataset, network, variant, seed of a run folder outside the workflow's layout (one made
    with `sdnet train --out`), from its run.json or summary.json settings."""
    for reader in (runfolder.read_run_info, runfolder.read_summary):
        try:
            settings = (reader(folder) or {}).get("settings") or {}
        except SdnetError:
            continue
        if {"dataset", "depth", "seed"} <= set(settings):
            variant = settings.get("variant") or settings.get("survival") or "?"
            arch = settings.get("arch")
            return {"dataset": settings["dataset"], "arch": arch, "depth": settings["depth"],
                    "network": _network_of(settings["depth"], arch), "variant": variant,
                    "seed": settings["seed"]}
    return None


def _run_folders(root: Path) -> Iterable[tuple[Path, dict]]:
    """Run folders under `root` (results/, results/runs/ or any folder above run folders): the
    workflow's layout (sdnet.layout) by their path, others by their files."""
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        parsed = layout.parse_run_folder(folder)
        key = vars(parsed) if parsed else None
        if key is None and _RUN_FILES & set(filenames):
            key = _identity(folder)
        if key is not None:
            dirnames.clear()  # a run folder holds no run folders
            yield folder, key
    # os.walk's order depends on the file system: callers sort.


def folder_rows(results: str | Path, now: float | None = None) -> list[RunRow]:
    """Every run folder under `results`, without a config (so nothing can be called stale)."""
    root = Path(results)
    if not root.is_dir():
        raise SdnetError(f"{root} is not a folder (--results wants the folder holding run folders)")
    now = time.time() if now is None else now
    rows = [_row(folder, key, None, None, now) for folder, key in _run_folders(root)]
    return _fill_left(sorted(rows, key=lambda r: (r.dataset, r.depth, r.network, r.variant,
                                                  r.seed, r.folder)))


# ----------------------------------------------------------------------------- totals


def _similar_epoch_seconds(rows: Sequence[RunRow], seconds: str = "train_seconds"
                           ) -> dict[tuple, float]:
    """Mean seconds per epoch by (dataset, network, variant) and by (dataset, network); `seconds`
    is the RunRow field summed (train_seconds, or device_seconds for the cost)."""
    sums: dict[tuple, list[float]] = {}
    for row in rows:
        spent = row.device_hours * 3600.0 if seconds == "device_seconds" else row.train_seconds
        if row.epochs_done and row.state != "stale" and spent:
            for key in ((row.dataset, row.network, row.variant), (row.dataset, row.network)):
                total = sums.setdefault(key, [0.0, 0])
                total[0] += spent
                total[1] += row.epochs_done
    return {key: seconds / epochs for key, (seconds, epochs) in sums.items() if epochs}


def seconds_left(row: RunRow, similar: dict[tuple, float],
                 own: float | None | bool = True) -> float | None:
    """Training seconds this run still needs: its own pace, else that of runs like it.
    `own` is the run's own pace (default: its training seconds per epoch)."""
    if row.state == "done":
        return 0.0
    if row.epochs is None:
        return None
    done = 0 if row.state == "stale" else row.epochs_done  # a stale run starts over
    pace = (row.epoch_seconds if own is True else own) if row.state != "stale" else None
    pace = pace or similar.get((row.dataset, row.network, row.variant)) \
        or similar.get((row.dataset, row.network))
    return None if pace is None else pace * max(row.epochs - done, 0)


def _fill_left(rows: list[RunRow]) -> list[RunRow]:
    """Each row's device-hours left, at its own device pace, else that of runs like it."""
    similar = _similar_epoch_seconds(rows, "device_seconds")
    for row in rows:
        left = seconds_left(row, similar, own=row.device_epoch_seconds)
        row.device_hours_left = None if left is None else left / 3600.0
    return rows


@dataclass
class Totals:
    states: dict[str, int]
    hours_spent: float
    hours_left: float
    unestimated: int  # runs whose remaining time nothing tells yet
    device_hours: float = 0.0  # every attempt of every run, on any device
    device_hours_left: float = 0.0
    device_hours_by_device: dict[str, float] = field(default_factory=dict)


def totals(rows: Sequence[RunRow]) -> Totals:
    similar = _similar_epoch_seconds(rows)
    left = [seconds_left(row, similar) for row in rows]
    counts = Counter(row.state for row in rows)
    by_device: Counter = Counter()
    for row in rows:
        if row.device_hours:
            by_device[row.device or "unknown device"] += row.device_hours
    return Totals(states={state: counts[state] for state in STATES if counts[state]},
                  hours_spent=sum(row.train_seconds for row in rows) / 3600,
                  hours_left=sum(s for s in left if s is not None) / 3600,
                  unestimated=sum(s is None for s in left),
                  device_hours=sum(row.device_hours for row in rows),
                  device_hours_left=sum(row.device_hours_left or 0.0 for row in rows),
                  device_hours_by_device=dict(sorted(by_device.items())))


# ----------------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _state_text(row: RunRow) -> str:
    if row.state == "running" and row.holder:
        return f"running ({row.holder.get('host')}:{row.holder.get('pid')})"
    return row.state


def render(rows: Sequence[RunRow]) -> str:
    """The human view: one line per run, then the totals."""
    from tabulate import tabulate

    header = ["data set", "network", "variant", "seed", "state", "epochs", "best val %",
              "test %", "ETA", "device h"]
    body = [[row.dataset, row.network, row.variant, row.seed, _state_text(row),
             f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}",
             _pct(row.best_val_error), _pct(row.test_error), _duration(row.eta_seconds),
             _hours(row.device_hours)]
            for row in rows]
    if any(row.world_size > 1 for row in rows):  # a run on several GPUs: say how many
        header.insert(5, "ranks")
        for line, row in zip(body, rows):
            line.insert(5, str(row.world_size))
    lines = [tabulate(body, header, tablefmt="simple", disable_numparse=True)] if rows else [
        "no runs"]
    stale = [row for row in rows if row.mismatch]
    for row in stale[:5]:
        lines.append(f"stale: {row.folder}: {', '.join(row.mismatch)}")
    if len(stale) > 5:
        lines.append(f"stale: ... and {len(stale) - 5} more")
    summary = totals(rows)
    states = ", ".join(f"{count} {state}" for state, count in summary.states.items())
    unfinished = sum(row.state != "done" for row in rows)
    if unfinished and summary.unestimated == unfinished:
        left = "time left unknown until a run has trained an epoch"
    else:
        left = f"about {_duration(summary.hours_left * 3600)} left"
        if summary.unestimated:
            left += f" (+ {summary.unestimated} runs not yet estimable)"
    lines.append(f"{len(rows)} run{'' if len(rows) == 1 else 's'}: {states or 'none'}; training "
                 f"{_duration(summary.hours_spent * 3600)} spent, {left}")
    lines.append(_cost_line(summary))
    note = _lock_note(rows)
    if note:
        lines.append(note)
    return "\n".join(lines)


def _hours(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:.2f}" if hours >= 0.01 or hours == 0 else "<0.01"


def _cost_line(summary: Totals) -> str:
    """Device-hours spent (per kind of device) and left (at the measured device paces)."""
    kinds = "; ".join(f"{device} {_hours(hours)}"
                      for device, hours in summary.device_hours_by_device.items())
    return (f"device-hours: {_hours(summary.device_hours)} spent"
            f"{f' ({kinds})' if kinds else ''}, about {_hours(summary.device_hours_left)} left")


# What the run lock guarantees, said where it matters (README "One trainer per run folder").
LOCK_NOTE = ("note: {what}; sdnet judges such runs by how recently they wrote (the trainer "
             "touches train.lock every minute). Two trainers on ONE node always exclude each "
             "other; whether a trainer on another node is kept out depends on the shared file "
             "system's locks crossing nodes (NFSv4 and Lustre with flock usually do, NFSv3 "
             "without a lock manager does not): do not start a run by hand that another node "
             "may be training.")


def _lock_note(rows: Sequence[RunRow]) -> str | None:
    """One line when some run is trained by another host: what the lock does and does not
    guarantee on a shared file system."""
    here = socket.gethostname()
    hosts = sorted({str(row.holder.get("host")) for row in rows
                    if row.state == "running" and row.holder
                    and row.holder.get("host") not in (None, here)})
    if not hosts:
        return None
    named = ", ".join(hosts[:3]) + (" ..." if len(hosts) > 3 else "")
    return LOCK_NOTE.format(what=f"runs marked running on {named} train on another host")


def as_json(rows: Sequence[RunRow]) -> str:
    """`--json`: a list with one object per run (eta_seconds null unless running)."""
    return json.dumps([asdict(row) for row in rows], indent=2)
