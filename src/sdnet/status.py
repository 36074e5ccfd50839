"""`sdnet status`: where a grid stands, read from its run folders (torch-free, pandas-free).

A grid runs for days; this is the one look at all of it: which runs are done, which train now and
when they will end, which were interrupted or no longer match the config. The config -> runs
expansion is `sdnet.grid`'s (the one the workflow uses), the meaning of a run folder's files is
`sdnet.runfolder`'s; this module only joins the two and lays them out.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdnet import layout, networks, runfolder
from sdnet.errors import SdnetError

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

    @property
    def epoch_seconds(self) -> float | None:
        """Mean training seconds per epoch so far (None before the first epoch)."""
        return self.train_seconds / self.epochs_done if self.epochs_done else None


def _row(folder: Path, key: dict, expected: dict | None, epochs: int | None,
         now: float) -> RunRow:
    """A run's line; `key` holds dataset, network, arch, depth, variant, seed."""
    status = runfolder.run_status(folder, expected=expected, now=now)
    return RunRow(dataset=key["dataset"], network=key["network"], arch=key["arch"],
                  depth=int(key["depth"]), variant=key["variant"], seed=int(key["seed"]),
                  state=status.state, epochs_done=status.epochs_done,
                  epochs=status.epochs if status.epochs is not None else epochs,
                  best_val_error=status.best_val_error, test_error=status.test_error,
                  eta_seconds=status.eta_seconds if status.state == "running" else None,
                  train_seconds=status.train_seconds, folder=str(folder), holder=status.holder,
                  mismatch=list(status.mismatch), world_size=status.world_size)


def grid_rows(configfiles: Sequence[str | Path], now: float | None = None) -> list[RunRow]:
    """Every run of the grid the config files describe, merged the way Snakemake merges them."""
    from sdnet import grid

    cfg = grid.load_config(configfiles)
    results = Path(cfg["results_dir"])
    now = time.time() if now is None else now
    return [_row(results / run.folder, _key(run), run.settings, run.settings.get("epochs"), now)
            for run in grid.runs(cfg)]


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
    return sorted(rows, key=lambda r: (r.dataset, r.depth, r.network, r.variant, r.seed,
                                       r.folder))


# ----------------------------------------------------------------------------- totals


def _similar_epoch_seconds(rows: Sequence[RunRow]) -> dict[tuple, float]:
    """Mean seconds per epoch by (dataset, depth, variant) and by (dataset, depth)."""
    sums: dict[tuple, list[float]] = {}
    for row in rows:
        if row.epochs_done and row.state != "stale":
            for key in ((row.dataset, row.depth, row.variant), (row.dataset, row.depth)):
                total = sums.setdefault(key, [0.0, 0])
                total[0] += row.train_seconds
                total[1] += row.epochs_done
    return {key: seconds / epochs for key, (seconds, epochs) in sums.items() if epochs}


def seconds_left(row: RunRow, similar: dict[tuple, float]) -> float | None:
    """Training seconds this run still needs: its own pace, else that of runs like it."""
    if row.state == "done":
        return 0.0
    if row.epochs is None:
        return None
    done = 0 if row.state == "stale" else row.epochs_done  # a stale run starts over
    pace = row.epoch_seconds if row.state != "stale" else None
    pace = pace or similar.get((row.dataset, row.depth, row.variant)) \
        or similar.get((row.dataset, row.depth))
    return None if pace is None else pace * max(row.epochs - done, 0)


@dataclass
class Totals:
    states: dict[str, int]
    hours_spent: float
    hours_left: float
    unestimated: int  # runs whose remaining time nothing tells yet


def totals(rows: Sequence[RunRow]) -> Totals:
    similar = _similar_epoch_seconds(rows)
    left = [seconds_left(row, similar) for row in rows]
    counts = Counter(row.state for row in rows)
    return Totals(states={state: counts[state] for state in STATES if counts[state]},
                  hours_spent=sum(row.train_seconds for row in rows) / 3600,
                  hours_left=sum(s for s in left if s is not None) / 3600,
                  unestimated=sum(s is None for s in left))


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
              "test %", "ETA"]
    body = [[row.dataset, row.network, row.variant, row.seed, _state_text(row),
             f"{row.epochs_done}/{row.epochs if row.epochs is not None else '?'}",
             _pct(row.best_val_error), _pct(row.test_error), _duration(row.eta_seconds)]
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
    return "\n".join(lines)


def as_json(rows: Sequence[RunRow]) -> str:
    """`--json`: a list with one object per run (eta_seconds null unless running)."""
    return json.dumps([asdict(row) for row in rows], indent=2)
