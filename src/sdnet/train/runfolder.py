"""A run folder's files, its lock and the state they mean (torch-free; contract: docs/DESIGN.md).

The trainer writes these files, `sdnet status` and the report read them; none of the readers
imports torch, and `run_status` reads only small files (no checkpoint), so a status over 1,000 run
folders takes well under a second.

State of a run folder (`run_status`), first match wins:
- `stale`: the recorded settings (run.json, else summary.json) differ from the expected ones;
- `running`: a live process holds `train.lock` (an `flock`, which the kernel drops when the
  process dies, even on SIGKILL: a lock file left by a dead trainer never blocks and its text is
  ignored). Locks may not cross nodes on a shared file system, so a lock file whose text names
  another host (or any lock file, on a file system without locks) counts as running while that
  trainer is seen writing: the lock file (touched at least every `HEARTBEAT_SECONDS`) or
  metrics.csv modified within `fresh_seconds` = max(`FRESH_FLOOR_SECONDS`, 3 x the mean epoch
  time);
- `done`: summary.json is there (written last by the trainer);
- `interrupted`: some of the trainer's files are there, but nothing runs it;
- `not started`: none are.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sdnet.atomic import atomic_write_json, atomic_write_text
from sdnet.errors import SdnetError
from sdnet.settings import settings_mismatch
from sdnet.spec import GRADIENT_COLUMNS, METRICS_COLUMNS

METRICS, SUMMARY, MODEL, CHECKPOINT = "metrics.csv", "summary.json", "model.pt", "checkpoint.pt"
# A finished run's outputs in one file (weights, metrics rows, summary): not a workflow output, so
# when Snakemake deletes the outputs of a job it thinks incomplete (its own process was killed
# after the trainer finished), the rerun restores them instead of training again.
FINAL_STATE = "final_state.pt"
RUN_INFO = "run.json"
# Per-block gradient strength, one row per epoch and block (sdnet.train.gradients); not a workflow
# output (a run finished before it existed has none), written before summary.json.
GRADIENTS = "gradients.csv"
# The history row key holding an epoch's per-block figures: [[mean_abs_grad | None, steps], ...].
BLOCK_GRADIENTS = "block_gradients"
# Every evaluation of validation and test error (setting eval_every: every N steps, and at each
# epoch's end), one row each; not a workflow output, written beside metrics.csv. The history row
# key holding an epoch's evaluations: [[step, val_error | None, test_error], ...] in order, the
# epoch-end one last (step = training steps done since the run began, 1-based count).
EVALUATIONS = "evaluations.csv"
EVALUATIONS_KEY = "evaluations"
EVALUATION_COLUMNS = ("epoch", "step", "val_error", "test_error")
LOCK = "train.lock"
EVENTS_DIR = "tensorboard"
ACCOUNTING = "accounting.json"  # device and device-seconds of every attempt (sdnet.train.accounting)
# Files whose atomic writes leave `.<name>.*.tmp` temp files when cut short.
WRITTEN_FILES = (METRICS, SUMMARY, MODEL, CHECKPOINT, RUN_INFO, FINAL_STATE, GRADIENTS,
                 ACCOUNTING, EVALUATIONS)
HEARTBEAT_SECONDS = 60.0
FRESH_FLOOR_SECONDS = 600.0
_LOCK_WAIT_SECONDS = 1.0  # a status probe holds a shared lock for microseconds
_INT_COLUMNS = ("epoch", "block", "active_steps", "step")


class RunBusyError(SdnetError):
    """Another live process trains this run folder."""

    def __init__(self, folder: Path, holder: dict | None) -> None:
        self.folder, self.holder = Path(folder), holder
        super().__init__(f"{folder} is being trained by {describe_holder(holder)}; "
                         "wait for it to finish or stop it first")


def describe_holder(holder: dict | None) -> str:
    """'host H, PID P (since T)'."""
    holder = holder or {}
    if holder.get("host") is None and holder.get("pid") is None:
        return "another process (it has not yet written its name)"
    since = f" (since {holder['since']})" if holder.get("since") else ""
    return f"host {holder.get('host')}, PID {holder.get('pid')}{since}"


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unix(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


# ----------------------------------------------------------------------------- reading files


def _read_json(path: Path) -> dict | None:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise SdnetError(f"{path} is unreadable ({err.strerror or err})") from err
    try:
        value = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SdnetError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise SdnetError(f"{path} holds {type(value).__name__}, not a JSON object")
    return value


def read_json(path: str | os.PathLike) -> dict | None:
    """A run-folder JSON object, None if absent; SdnetError naming the file if malformed."""
    return _read_json(Path(path))


def read_summary(folder: str | os.PathLike) -> dict | None:
    """summary.json (the run is complete), None if absent; SdnetError naming it if malformed."""
    return _read_json(Path(folder) / SUMMARY)


def read_run_info(folder: str | os.PathLike) -> dict | None:
    """run.json (settings, fingerprint, epochs, host, pid, started), None if absent."""
    return _read_json(Path(folder) / RUN_INFO)


def _number(text: str, column: str) -> int | float | None:
    if text == "":
        return None
    return int(text) if column in _INT_COLUMNS else float(text)


def read_metrics(folder: str | os.PathLike) -> list[dict]:
    """metrics.csv rows (numbers as int/float, empty cells None); [] if absent."""
    return _read_csv(Path(folder) / METRICS)


def read_evaluations(folder: str | os.PathLike) -> list[dict]:
    """evaluations.csv rows (epoch, step, val_error or None, test_error); [] if absent."""
    return _read_csv(Path(folder) / EVALUATIONS)


def epoch_evaluations(row: dict) -> list[list]:
    """[[step, val_error, test_error], ...] of a history row; a row from before evaluations
    were recorded stands for its one epoch-end evaluation (step unknown: None)."""
    found = row.get(EVALUATIONS_KEY)
    return [list(e) for e in found] if found else [[None, row["val_error"], row["test_error"]]]


def read_gradients(folder: str | os.PathLike) -> list[dict]:
    """gradients.csv rows (epoch, block, mean_abs_grad or None, active_steps); [] if absent."""
    return _read_csv(Path(folder) / GRADIENTS)


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return []
            return [{c: _number(v, c) for c, v in zip(header, row, strict=True)}
                    for row in reader if row]
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError, csv.Error) as err:
        raise SdnetError(f"{path} is malformed ({err})") from err


# ----------------------------------------------------------------------------- writing files


def _csv_value(value: Any) -> str:
    """repr for floats (round-trips exactly, so resumed runs compare bit for bit)."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def metrics_text(history: Iterable[dict]) -> str:
    rows = [",".join(METRICS_COLUMNS)]  # .get: a row of a checkpoint from before a column
    rows += [",".join(_csv_value(row.get(c)) for c in METRICS_COLUMNS) for row in history]
    return "\n".join(rows) + "\n"


def gradients_text(history: Iterable[dict]) -> str:
    """gradients.csv: every epoch's per-block figures (a block that never ran: empty mean)."""
    rows = [",".join(GRADIENT_COLUMNS)]
    for row in history:
        for block, (mean, steps) in enumerate(row.get(BLOCK_GRADIENTS) or [], start=1):
            rows.append(",".join(_csv_value(v) for v in (row["epoch"], block, mean, steps)))
    return "\n".join(rows) + "\n"


def evaluations_text(history: Iterable[dict]) -> str:
    """evaluations.csv: every evaluation of every epoch, in order."""
    rows = [",".join(EVALUATION_COLUMNS)]
    for row in history:
        for step, val, test in epoch_evaluations(row):
            rows.append(",".join(_csv_value(v) for v in (row["epoch"], step, val, test)))
    return "\n".join(rows) + "\n"


def write_evaluations(folder: Path, history: list[dict]) -> None:
    """The whole table every epoch, atomically (as metrics.csv)."""
    atomic_write_text(Path(folder) / EVALUATIONS, evaluations_text(history))


def write_gradients(folder: Path, history: list[dict]) -> None:
    """The whole table every epoch, atomically (as metrics.csv)."""
    atomic_write_text(Path(folder) / GRADIENTS, gradients_text(history))


def write_metrics(folder: Path, history: list[dict]) -> None:
    """The whole table every epoch, atomically: a reader never sees half a row."""
    atomic_write_text(Path(folder) / METRICS, metrics_text(history))


def write_run_info(folder: Path, settings: dict, fp: str, epochs: int, epochs_done: int,
                   world_size: int = 1) -> dict:
    """run.json at every (re)start: who trains this folder, with what, from which epoch, on how
    many ranks (`host` and `pid` are rank 0's)."""
    info = {"settings": settings, "fingerprint": fp, "epochs": epochs, "host": socket.gethostname(),
            "pid": os.getpid(), "started": _now_text(), "start_epoch": epochs_done,
            "world_size": world_size}
    atomic_write_json(Path(folder) / RUN_INFO, info)
    return info


def write_summary(folder: Path, summary: dict) -> None:
    atomic_write_json(Path(folder) / SUMMARY, summary)


def remove_temp_files(folder: Path) -> None:
    """Temp files of atomic writes cut short by SIGTERM/SIGKILL (e.g. a Slurm walltime)."""
    for name in WRITTEN_FILES:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


@dataclass
class RunState:
    """What survives an epoch boundary besides weights and optimizer: the metrics rows so far
    and the best evaluation: lowest validation error over ALL evaluations (every `eval_every`
    steps and each epoch's end), earliest on ties, and the test error there (the original's
    reported number)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_error: float | None = None
    best_step: int | None = None
    best_test_error: float | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def add(self, row: dict) -> None:
        """Append an epoch row and update best-so-far from its evaluations."""
        self.history.append(row)
        for step, val, test in epoch_evaluations(row):
            if val is not None and (self.best_val_error is None or val < self.best_val_error):
                self.best_epoch, self.best_val_error = row["epoch"], val
                self.best_step, self.best_test_error = step, test

    def test_error_at_best(self) -> float:
        """The test error at the best evaluation (the last epoch's without validation)."""
        if self.best_test_error is not None:
            return self.best_test_error
        if self.best_epoch is not None:  # a checkpoint from before evaluations were recorded
            return self.history[self.best_epoch - 1]["test_error"]
        return self.history[-1]["test_error"]


# ----------------------------------------------------------------------------- the lock


def _parse_holder(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    return {"host": value.get("host"), "pid": value.get("pid"), "since": value.get("since")}


def _probe(folder: Path) -> tuple[bool | None, dict | None, float | None]:
    """(held by a live process (None: cannot tell, no locks here), what the lock file's text
    says, its mtime), without creating the file."""
    path = Path(folder) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        except OSError:  # no locks on this file system: the text and mtimes tell
            held = None
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        mtime = os.fstat(fd).st_mtime
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return held, _parse_holder(text), mtime


def lock_holder(folder: str | os.PathLike) -> dict | None:
    """{"host", "pid", "since"} of the live process holding the folder's lock, else None (host
    and pid None while the holder has not yet written them)."""
    held, holder, _ = _probe(Path(folder))
    if not held:
        return None
    return holder or {"host": None, "pid": None, "since": None}


class RunLock:
    """Exclusive, non-blocking lock on a run folder, held by one trainer for the whole run.

    `RunLock(folder)` takes it or raises RunBusyError naming the holder (after retrying for
    `wait` seconds: a `sdnet status` probe holds it, shared, for microseconds); the kernel drops
    it when the process exits, so a crash leaves nothing that blocks. The lock file is never
    deleted (deleting a lock file lets two processes each lock a different inode); its text names
    the holder and is cleared on release. On a file system without locks (an NFS mount without a
    lock manager) it goes on unlocked and says why in `unlocked_reason`.
    """

    def __init__(self, folder: str | os.PathLike, wait: float = _LOCK_WAIT_SECONDS) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.unlocked_reason: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise SdnetError(f"cannot create the run lock {self.path}: "
                             f"{err.strerror or err}") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _parse_holder(os.pread(self.fd, 4096, 0).decode("utf-8", "replace"))
                    os.close(self.fd)
                    self.fd = -1
                    raise RunBusyError(self.folder, holder) from None
                time.sleep(0.05)
            except OSError as err:  # ENOLCK, EOPNOTSUPP: this file system has no locks
                self.unlocked_reason = f"{self.path} cannot be locked here ({err.strerror or err})"
                break
        self.holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now_text()}
        with contextlib.suppress(OSError):  # the text only informs; a full disk shows up later
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, (json.dumps(self.holder) + "\n").encode(), 0)
        self._touched = time.monotonic()

    def touch(self, force: bool = False) -> None:
        """Heartbeat for readers on other nodes: refresh the lock file's mtime (cheap; at most
        every HEARTBEAT_SECONDS unless forced)."""
        if self.fd < 0 or (not force and time.monotonic() - self._touched < HEARTBEAT_SECONDS):
            return
        with contextlib.suppress(OSError):
            os.utime(self.fd)
        self._touched = time.monotonic()

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):  # -> Self (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


# ----------------------------------------------------------------------------- state


@dataclass
class RunStatus:
    state: str  # "done" | "running" | "interrupted" | "not started" | "stale"
    epochs_done: int
    epochs: int | None
    best_val_error: float | None
    test_error: float | None  # the last epoch's
    train_seconds: float  # sum of epoch_seconds so far
    eta_seconds: float | None  # only when running
    holder: dict | None
    mismatch: list[str]
    world_size: int = 1  # ranks of the latest (re)start, else of the finished run


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def fresh_seconds(mean_epoch_seconds: float | None) -> float:
    """How recently a trainer on another host must have written to count as running."""
    return max(FRESH_FLOOR_SECONDS, 3 * (mean_epoch_seconds or 0.0))


def _safe(reader: Any, folder: Path) -> Any:
    """A torn or foreign file counts as absent for the status (the trainer treats it so too)."""
    try:
        return reader(folder)
    except SdnetError:
        return None


def _wall_epoch_seconds(info: dict | None, epochs_done: int, last_write: float | None
                        ) -> float | None:
    """Wall seconds per epoch since this (re)start, evaluation included."""
    if not info or last_write is None:
        return None
    started, first = _unix(info.get("started")), info.get("start_epoch")
    if started is None or not isinstance(first, int) or epochs_done <= first:
        return None
    return max(last_write - started, 0.0) / (epochs_done - first)


def run_status(folder: str | os.PathLike, expected: dict | None = None,
               now: float | None = None) -> RunStatus:
    """What state the run folder is in (see the module docstring), from its small files only."""
    folder = Path(folder)
    now = time.time() if now is None else now
    summary = _safe(read_summary, folder)
    info = _safe(read_run_info, folder)
    held, holder, lock_mtime = _probe(folder)
    recorded = (info or {}).get("settings") or (summary or {}).get("settings")
    mismatch = settings_mismatch(recorded, expected) if recorded and expected else []
    epochs = (info or {}).get("epochs") or ((summary or {}).get("settings") or {}).get("epochs")
    if epochs is None and expected:
        epochs = expected.get("epochs")

    if summary is not None and not held:
        rows = None
        epochs_done = int(summary.get("epochs") or 0)
        best, test = summary.get("best_val_error"), summary.get("final_test_error")
        train_seconds = float(summary.get("train_seconds") or 0.0)
        epochs = epochs or epochs_done
    else:
        rows = _safe(read_metrics, folder) or []
        epochs_done = len(rows)
        vals = [r["val_error"] for r in rows if r.get("val_error") is not None]
        best = min(vals) if vals else None
        test = rows[-1].get("test_error") if rows else None
        train_seconds = float(sum((r.get("epoch_seconds") or 0.0 for r in rows), 0.0))
    mean_epoch = train_seconds / epochs_done if epochs_done else None

    running = bool(held)
    elsewhere = holder and holder.get("host") not in (None, socket.gethostname())
    if not held and summary is None and holder and (elsewhere or held is None):
        last = max(filter(None, [lock_mtime, _mtime(folder / METRICS)]), default=None)
        running = last is not None and now - last <= fresh_seconds(mean_epoch)
    if mismatch:
        state = "stale"
    elif running:
        state = "running"
    elif summary is not None:
        state = "done"
    elif rows or info or (folder / CHECKPOINT).exists() or (folder / FINAL_STATE).exists():
        state = "interrupted"
    else:
        state = "not started"

    eta = None
    if state == "running" and epochs:
        wall = _wall_epoch_seconds(info, epochs_done, _mtime(folder / METRICS))
        per_epoch = wall if wall is not None else mean_epoch
        if per_epoch is not None:
            eta = per_epoch * max(int(epochs) - epochs_done, 0)
    ranks = (info or {}).get("world_size") or (summary or {}).get("world_size") or 1
    return RunStatus(state=state, epochs_done=epochs_done, epochs=epochs, best_val_error=best,
                     test_error=test, train_seconds=train_seconds, eta_seconds=eta,
                     holder=holder if running else None, mismatch=mismatch,
                     world_size=int(ranks))


def is_no_space(err: BaseException | None) -> bool:
    """ENOSPC (or a full quota), also inside torch's `RuntimeError [enforce fail at
    inline_container.cc] ...` (the OSError is its context) or naming it in its text."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(err, RuntimeError) and "No space left" in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


class DiskFullError(SdnetError):
    """The disk filled up while the trainer wrote a run-folder file; nothing finished is lost."""


@contextlib.contextmanager
def no_space_guard(path: Path, checkpoint_epoch: int | None) -> Iterator[None]:
    """Turn a full disk while writing `path` into one line saying what is safe and what to do.

    The writers are atomic (temp file + os.replace), so the failed write has already removed its
    temp file and left the previous version of `path` (and of checkpoint.pt) as it was.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        if not is_no_space(err):
            raise
        if checkpoint_epoch:
            safe = (f"the previous checkpoint (epoch {checkpoint_epoch}) is intact; free some "
                    "space and run the same command again: it resumes from there")
        else:
            safe = ("no epoch had been checkpointed yet; free some space and run the same "
                    "command again")
        raise DiskFullError(f"no space left on device while writing {path}; {safe}") from None
