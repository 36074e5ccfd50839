"""A run folder's life under its trainer, in one object: `RunFolder` (the torch side).

Open (`open`: finished, restore, resume or fresh start, under the run lock the trainer holds),
begin (run.json, the files so far, the TensorBoard events, the cost ledger), after every epoch
(`end_epoch`: metrics.csv, gradients.csv, events, checkpoint.pt, accounting.json), finish
(`finish`: model.pt, summary.json, final_state.pt). Rank 0 alone writes; every write goes through
one full-disk guard (`_guarded`), which says what is safe: the last checkpoint is never lost.

`prepare_run_folder` decides, under the run lock, between a complete run (nothing to do), a
finished run whose outputs were deleted (rewritten from final_state.pt: Snakemake deletes the
outputs of a job it takes for incomplete), a run to resume (checkpoint.pt) and a fresh start;
files written with other settings are refused or discarded per `on_mismatch`. `write_final_files`
writes what a finished run leaves. The torch-free side (names, readers, lock, states) is
`sdnet.train.runfolder`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from sdnet.console import log
from sdnet.distributed.world import check_world_size
from sdnet.errors import SdnetError
from sdnet.settings import TrainConfig, describe_mismatch
from sdnet.train import accounting, checkpoint, runfolder
from sdnet.train.checkpoint import checkpoint_path, read_checkpoint
from sdnet.train.runfolder import MODEL, RUN_INFO, SUMMARY, RunLock, RunState, no_space_guard


def write_outputs(out: Path, weights: dict, history: list[dict], summary: dict) -> None:
    """metrics.csv, gradients.csv, evaluations.csv, model.pt, then summary.json last (its presence marks the
    run complete)."""
    epochs = summary["epochs"]
    with no_space_guard(out / runfolder.METRICS, epochs):
        runfolder.write_metrics(out, history)
    with no_space_guard(out / runfolder.GRADIENTS, epochs):
        runfolder.write_gradients(out, history)
    with no_space_guard(out / runfolder.EVALUATIONS, epochs):
        runfolder.write_evaluations(out, history)
    with no_space_guard(out / MODEL, epochs):
        checkpoint.atomic_torch_save(weights, out / MODEL)
    with no_space_guard(out / SUMMARY, epochs):
        runfolder.write_summary(out, summary)


def write_final_files(out: Path, model: nn.Module, history: list[dict], summary: dict) -> None:
    """The outputs, then final_state.pt, then drop the checkpoint. On a full disk the checkpoint
    of the last epoch stays, so a rerun only writes these files again; a final state that does
    not fit only costs the restore shortcut (a warning)."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_outputs(out, weights, history, summary)
    try:
        checkpoint.save_final_state(out, weights, history, summary)
    except (OSError, RuntimeError) as err:
        log(f"sdnet: warning: could not write {out / runfolder.FINAL_STATE} ({err}); the run is "
            "complete, but if its outputs are deleted it trains again")
    checkpoint_path(out).unlink(missing_ok=True)


def restore_outputs(out: Path, state: dict) -> dict:
    """A finished run whose outputs were deleted (Snakemake does that for a job it thinks
    incomplete, e.g. after its own process was killed): rewrite them from final_state.pt."""
    summary = state["summary"]
    write_outputs(out, state["model"], state["history"], summary)
    checkpoint_path(out).unlink(missing_ok=True)
    log(f"sdnet: restored the finished run in {out} from {runfolder.FINAL_STATE} "
        f"({summary['epochs']} epochs; nothing retrained)")
    return summary


def _existing_summary(out: Path) -> dict | None:
    """The finished run's summary, or None (also for an unreadable one, which is dropped)."""
    try:
        return runfolder.read_summary(out)
    except SdnetError as err:
        log(f"sdnet: {err}; treating the run as unfinished")
        (out / SUMMARY).unlink(missing_ok=True)
        return None


def _stale(path: Path, old_settings: dict, settings: dict, config: TrainConfig) -> None:
    """A run-folder file written with other settings: discard it or refuse, per on_mismatch."""
    change = describe_mismatch(old_settings, settings)
    if config.on_mismatch == "restart":
        log(f"sdnet: {path} was written with other settings ({change}); starting over")
        return
    raise SdnetError(f"{path} was written with other settings ({change}); pass --restart or "
                     f"--on-mismatch restart to start over, or use another --out")


def _clear_run(out: Path) -> None:
    for name in (SUMMARY, checkpoint_path(out).name, RUN_INFO, runfolder.FINAL_STATE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / runfolder.EVENTS_DIR, ignore_errors=True)


def prepare_run_folder(config: TrainConfig, settings: dict, fp: str, world_size: int = 1
                       ) -> tuple[dict | None, dict | None]:
    """Decide between 'already complete', 'resume' and 'fresh start' (under the run lock).

    Returns (finished summary, checkpoint): at most one is not None. A checkpoint of another
    world size (ranks) is refused, `--restart` aside.
    """
    out = config.out
    runfolder.remove_temp_files(out)
    if config.restart:
        _clear_run(out)
        return None, None
    summary = _existing_summary(out)
    if summary is not None:
        if summary.get("fingerprint") == fp:
            checkpoint_path(out).unlink(missing_ok=True)
            return summary, None
        _stale(out / SUMMARY, summary.get("settings", {}), settings, config)
        _clear_run(out)
        return None, None
    final = checkpoint.read_final_state(out)
    if final is not None:
        if final.get("fingerprint") == fp:
            return restore_outputs(out, final), None
        _stale(out / runfolder.FINAL_STATE, final.get("settings", {}), settings, config)
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
    check_world_size(ckpt, world_size, path)
    return None, ckpt


class RunFolder:
    """One run folder while its trainer runs (see the module doc). `writes` is False on every
    rank but 0 of a run of several: they keep the ledger's count, rank 0 writes."""

    def __init__(self, config: TrainConfig, settings: dict, fp: str, lock: RunLock, *,
                 world_size: int = 1, writes: bool = True) -> None:
        self.config, self.settings, self.fp = config, settings, fp
        self.out = Path(config.out)
        self.lock = lock
        self.world_size = world_size
        self.writes = writes
        self.saved_epoch: int | None = None  # the epoch checkpoint.pt holds
        self.events: Any = None
        self.ledger: accounting.Ledger | None = None

    def open(self) -> tuple[dict | None, dict | None]:
        """(finished summary, checkpoint to resume): see `prepare_run_folder`; for a run to
        train, run.json says at once that it started (`sdnet status`). Rank 0's call."""
        summary, ckpt = prepare_run_folder(self.config, self.settings, self.fp, self.world_size)
        self.adopt(ckpt)
        if summary is None:
            with self._guarded(RUN_INFO):
                runfolder.write_run_info(self.out, self.settings, self.fp, self.config.epochs,
                                         self.saved_epoch or 0, world_size=self.world_size)
        return summary, ckpt

    def adopt(self, ckpt: dict | None) -> None:
        """What checkpoint.pt holds, on every rank (rank 0 opened the folder)."""
        self.saved_epoch = ckpt["epoch"] if ckpt is not None else None

    @contextlib.contextmanager
    def _guarded(self, name: str) -> Iterator[None]:
        with no_space_guard(self.out / name, self.saved_epoch):
            yield

    def begin(self, state: RunState, device_kind: str, device_label: str,
              events: Callable[[], Any], threads: int | None = None) -> None:
        """The files so far (after a resume: as the checkpoint left them), the event writer
        (`events()`, rank 0's) and the cost ledger of this attempt."""
        if self.writes:
            self._write_epoch_files(state.history)
        self.events = events()
        self.ledger = accounting.Ledger(self.out, self.fp, device_kind, device_label,
                                        start_epoch=state.epochs_done, devices=self.world_size,
                                        threads=threads, writes=self.writes)

    def heartbeat(self) -> None:
        """After every step (host-side only): the lock's mtime, the ledger's running count."""
        self.lock.touch()
        if self.ledger is not None:
            self.ledger.tick()

    def _write_epoch_files(self, history: list[dict]) -> None:
        """metrics.csv, gradients.csv and evaluations.csv: the history so far."""
        with self._guarded(runfolder.METRICS):
            runfolder.write_metrics(self.out, history)
        with self._guarded(runfolder.GRADIENTS):
            runfolder.write_gradients(self.out, history)
        with self._guarded(runfolder.EVALUATIONS):
            runfolder.write_evaluations(self.out, history)

    def end_epoch(self, row: dict, state: RunState, eval_seconds: float,
                  save: Callable[[], None]) -> None:
        """The epoch's files; `save()` writes checkpoint.pt (the caller knows the model)."""
        if self.writes:
            self._write_epoch_files(state.history)
            self.events.add(row)
            with self._guarded(checkpoint.CHECKPOINT):
                save()
        self.saved_epoch = state.epochs_done
        self.ledger.epoch(row["epoch_seconds"], eval_seconds)
        self.lock.touch(force=True)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
        if self.ledger is not None:
            self.ledger.close()

    def finish(self, model: nn.Module, state: RunState, summary: dict) -> dict:
        """The summary with this run's cost, and (rank 0) the final files."""
        summary.update(self.ledger.summary_fields())
        if self.writes:
            write_final_files(self.out, model, state.history, summary)
        return summary
