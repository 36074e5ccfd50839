"""`sdnet status`'s cost: device-hours per run and in total (per device), device-hours left at
the measured device paces, the `--json` fields, and the note on locks across nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sdnet.ops import status
from sdnet.spec import METRICS_COLUMNS
from sdnet.train import accounting, runfolder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_run(root: Path, variant: str, seed: int, epochs_done: int, epochs: int,
             device_seconds_per_epoch: float | None, device: tuple[str, str] = ("cuda", "GPU X"),
             share: float = 1.0) -> Path:
    """A run folder with `epochs_done` epochs of metrics and (unless None) an accounting record
    of that many epochs at the given device pace."""
    folder = root / "cifar10" / "resnet8" / variant / f"seed{seed}"
    history = [{column: 1.0 for column in METRICS_COLUMNS} | {"epoch": e + 1, "epoch_seconds": 2.0}
               for e in range(epochs_done)]
    runfolder.write_metrics(folder, history)
    runfolder.write_run_info(folder, {"epochs": epochs}, "fp", epochs, 0)
    if device_seconds_per_epoch is not None:
        clock = Clock()
        ledger = accounting.Ledger(folder, "fp", *device, clock=clock, share=share)
        for _ in range(epochs_done):
            clock.now += device_seconds_per_epoch / share
            ledger.epoch(1.0, 1.0)
        ledger.close()
    return folder


def test_device_hours_spent_and_left_per_run_and_in_total(tmp_path: Path) -> None:
    make_run(tmp_path, "baseline", 0, 10, 40, 360.0)  # 1 h spent, 3 h left at its own pace
    make_run(tmp_path, "baseline", 1, 0, 40, None)  # no epoch yet: 4 h at the pace of seed 0
    make_run(tmp_path, "stochastic", 0, 5, 40, 720.0, ("cpu", "Some CPU"))  # 1 h, 7 h left
    rows = {(r.variant, r.seed): r for r in status.folder_rows(tmp_path)}
    first = rows["baseline", 0]
    assert first.device == "cuda GPU X"
    assert first.device_hours == pytest.approx(1.0)
    assert first.device_hours_left == pytest.approx(3.0)
    assert rows["stochastic", 0].device_hours_left == pytest.approx(7.0)
    # seed 1 has no epoch yet: the device pace of its variant's runs
    assert rows["baseline", 1].device_hours == 0.0
    assert rows["baseline", 1].device_hours_left == pytest.approx(4.0)

    total = status.totals(list(rows.values()))
    assert total.device_hours == pytest.approx(2.0)
    assert total.device_hours_left == pytest.approx(14.0)
    assert total.device_hours_by_device == {"cpu Some CPU": pytest.approx(1.0),
                                            "cuda GPU X": pytest.approx(1.0)}
    view = status.render(list(rows.values()))
    assert "device h" in view.splitlines()[0]
    assert ("device-hours: 2.00 spent (cpu Some CPU 1.00; cuda GPU X 1.00), about 14.00 left"
            in view)
    objects = json.loads(status.as_json(list(rows.values())))
    assert {"device", "device_hours", "device_hours_left"} <= set(objects[0])
    assert objects[0]["device"] == "cuda GPU X"


def test_a_shared_gpu_costs_its_part(tmp_path: Path) -> None:
    make_run(tmp_path, "baseline", 0, 10, 10, 360.0, share=0.5)
    [row] = status.folder_rows(tmp_path)
    assert row.device_hours == pytest.approx(1.0)  # 2 h of wall time on half a GPU
    assert row.device_hours_left == pytest.approx(0.0)


def test_a_run_from_before_accounting_counts_its_training_seconds(tmp_path: Path) -> None:
    make_run(tmp_path, "baseline", 0, 4, 8, None)
    [row] = status.folder_rows(tmp_path)
    assert row.device is None and row.device_hours == pytest.approx(8.0 / 3600)
    assert row.device_hours_left == pytest.approx(8.0 / 3600)


def test_a_run_trained_on_another_node_gets_the_lock_note(tmp_path: Path) -> None:
    folder = make_run(tmp_path, "baseline", 0, 2, 8, 60.0)
    holder = {"host": "gpu-node-17", "pid": 4242, "since": "2026-12-01T10:00:00+00:00"}
    (folder / runfolder.LOCK).write_text(json.dumps(holder) + "\n")
    [row] = status.folder_rows(tmp_path, now=time.time())
    assert row.state == "running" and row.holder["host"] == "gpu-node-17"
    view = status.render([row])
    assert "note: runs marked running on gpu-node-17 train on another host" in view
    assert "Two trainers on ONE node always exclude each other" in view
    (folder / runfolder.LOCK).write_text("")
    assert "note:" not in status.render(status.folder_rows(tmp_path))
