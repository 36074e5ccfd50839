"""Live curves: TensorBoard event files in `<run>/tensorboard/`, one point per epoch (step = epoch).

Optional: without the `tensorboard` package (`pip install -e '.[tensorboard]'`) nothing is
written and nothing else changes. A resumed run opens its writer with `purge_step` = the first
epoch it will write, so points a killed run wrote past its last checkpoint are hidden and every
step appears once. Event files are a convenience, not a result: a failure to write them (a full
disk, say) is logged once and the run goes on without them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdnet.train.runfolder import EVENTS_DIR

# metrics.csv column -> TensorBoard tag
TAGS = {"train_loss": "loss/train", "train_error": "error/train", "val_error": "error/val",
        "test_error": "error/test", "lr": "lr", "blocks_computed": "blocks_computed",
        "epoch_seconds": "epoch_seconds", "grad_first_conv": "gradient/first_conv"}


def summary_writer_class() -> Any | None:
    """torch's SummaryWriter if tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def _after_earlier_sessions(events: Path) -> None:
    """Start this session's event file in a later second than every earlier one.

    Readers (TensorBoard, its EventAccumulator) take a folder's event files in name order, and a
    name is `events.out.tfevents.<unix second>.<host>.<pid>...`: a resume within the same second
    as the session it continues would otherwise sort by PID and could be read first, so its purge
    would not hide the killed session's extra steps."""
    seconds = []
    for path in events.glob("events.out.tfevents.*"):
        part = path.name.split(".")[3]
        if part.isdigit():
            seconds.append(int(part))
    if seconds and time.time() < max(seconds) + 1:
        time.sleep(max(seconds) + 1 - time.time())


class EpochEvents:
    """Per-epoch scalars of one run; a no-op without tensorboard."""

    def __init__(self, folder: Path, epochs_done: int, log: Callable[[str], None]) -> None:
        self.log = log
        self.writer = None
        writer_class = summary_writer_class()
        if writer_class is None:
            return
        events = Path(folder) / EVENTS_DIR
        if epochs_done == 0:  # a fresh start: curves of an earlier attempt mean nothing now
            shutil.rmtree(events, ignore_errors=True)
        _after_earlier_sessions(events)
        try:
            self.writer = writer_class(log_dir=str(events),
                                       purge_step=epochs_done + 1 if epochs_done else None)
        except Exception as err:  # noqa: BLE001 (optional output: never fail the run)
            self._disable(err)

    def _disable(self, err: BaseException) -> None:
        self.log(f"sdnet: warning: TensorBoard event files disabled ({type(err).__name__}: "
                 f"{err}); metrics.csv is unaffected")
        self.close()
        self.writer = None

    def add(self, row: dict) -> None:
        """Write one epoch's row (step = its 1-based epoch) and flush it to disk."""
        if self.writer is None:
            return
        try:
            for column, tag in TAGS.items():
                if row.get(column) is not None:
                    self.writer.add_scalar(tag, row[column], global_step=row["epoch"])
            self.writer.flush()
        except Exception as err:  # noqa: BLE001
            self._disable(err)

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001, S110
                pass
            self.writer = None
