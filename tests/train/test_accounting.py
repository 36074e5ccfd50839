"""sdnet.train.accounting: device-seconds summed over every attempt, kept across a SIGKILL and resume,
shares of a GPU, and the records of a run started over with other settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdnet import cli
from sdnet.errors import SdnetError
from sdnet.train import accounting, runfolder

QUICK = ["--dataset", "cifar10", "--depth", "8", "--epochs", "3", "--batch-size", "32",
         "--lr", "0.05", "--milestones", "2", "--limit-train", "128", "--seed", "1",
         "--device", "cpu", "--no-amp"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ledger_adds_attempts_and_never_restarts_the_count(tmp_path: Path) -> None:
    clock = Clock()
    first = accounting.Ledger(tmp_path, "fp", "cuda", "NVIDIA H200", clock=clock, share=1.0)
    clock.now += 30
    first.epoch(25.0, 4.0)
    clock.now += 50  # killed here: the last write was at 30 s
    record = accounting.read_accounting(tmp_path)
    assert record["device"] == "cuda NVIDIA H200"
    assert record["device_seconds"] == pytest.approx(30.0)
    second = accounting.Ledger(tmp_path, "fp", "cuda", "NVIDIA H200", start_epoch=1,
                               clock=clock, share=1.0)
    clock.now += 100
    second.epoch(80.0, 10.0)
    second.close()
    record = accounting.read_accounting(tmp_path)
    assert [a["start_epoch"] for a in record["attempts"]] == [0, 1]
    assert record["device_seconds"] == pytest.approx(130.0)
    assert second.summary_fields()["device_seconds"] == pytest.approx(130.0)
    assert second.summary_fields()["attempts"] == 2
    totals = accounting.spent(record)
    assert totals.epochs == 2 and totals.seconds_per_epoch == pytest.approx(65.0)
    assert totals.by_device == {"cuda NVIDIA H200": pytest.approx(130.0)}


def test_tick_writes_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    ledger = accounting.Ledger(tmp_path, "fp", "cpu", "Some CPU", clock=clock)
    clock.now += 59
    ledger.tick()
    assert accounting.read_accounting(tmp_path)["device_seconds"] == 0.0
    clock.now += 2
    ledger.tick()
    assert accounting.read_accounting(tmp_path)["device_seconds"] == pytest.approx(61.0)


def test_a_shared_gpu_counts_its_part_and_cpus_count_whole(tmp_path: Path) -> None:
    env = {accounting.RUNS_PER_GPU_ENV: "4"}
    assert accounting.device_share("cuda", env) == 0.25
    assert accounting.device_share("cpu", env) == 1.0
    assert accounting.device_share("cuda", {}) == 1.0
    for bad in ("0", "9", "1.5", "two"):
        with pytest.raises(SdnetError, match="from 1 to 8"):
            accounting.runs_per_gpu({accounting.RUNS_PER_GPU_ENV: bad})
    clock = Clock()
    ledger = accounting.Ledger(tmp_path, "fp", "cuda", "GPU", clock=clock, share=0.5)
    clock.now += 100
    ledger.close()
    assert accounting.read_accounting(tmp_path)["device_seconds"] == pytest.approx(50.0)


def test_attempts_of_other_settings_no_longer_count(tmp_path: Path) -> None:
    clock = Clock()
    old = accounting.Ledger(tmp_path, "old", "cpu", "CPU", clock=clock)
    clock.now += 40
    old.close()
    new = accounting.Ledger(tmp_path, "new", "cpu", "CPU", clock=clock)
    clock.now += 10
    new.close()
    record = accounting.read_accounting(tmp_path)
    assert record["device_seconds"] == pytest.approx(10.0)
    assert record["discarded_device_seconds"] == pytest.approx(40.0)
    assert len(record["attempts"]) == 1


def test_a_torn_record_is_started_afresh_with_a_warning(tmp_path: Path, capsys) -> None:
    (tmp_path / accounting.ACCOUNTING).write_text("{not json")
    with pytest.raises(SdnetError, match="accounting.json is not valid JSON"):
        accounting.read_accounting(tmp_path)
    accounting.Ledger(tmp_path, "fp", "cpu", "CPU").close()
    assert "not carried over" in capsys.readouterr().err
    assert len(accounting.read_accounting(tmp_path)["attempts"]) == 1


@pytest.mark.slow
def test_sigkilled_then_resumed_run_sums_both_attempts(prepared_cifar10: Path, tmp_path: Path,
                                                       capsys) -> None:
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "sdnet", "train", "--data",
                             str(prepared_cifar10), *QUICK, "--out", str(out)], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    first = accounting.read_accounting(out)
    assert len(first["attempts"]) == 1 and first["attempts"][0]["epochs"] >= 1
    # At least the epochs it finished (their training time), at most its whole life.
    assert first["device_seconds"] >= sum(
        float(row["epoch_seconds"]) for row in runfolder.read_metrics(out)[:1])
    assert cli.main(["train", "--data", str(prepared_cifar10), *QUICK, "--out", str(out)]) == 0
    record = accounting.read_accounting(out)
    summary = json.loads((out / "summary.json").read_text())
    attempts = record["attempts"]
    assert len(attempts) == 2 and attempts[1]["start_epoch"] >= 1
    assert sum(a["epochs"] for a in attempts) >= 3
    assert attempts[0]["device_seconds"] >= first["device_seconds"] * 0.999
    assert record["device_seconds"] == pytest.approx(sum(a["device_seconds"] for a in attempts))
    assert summary["device_seconds"] == pytest.approx(record["device_seconds"], rel=0.05)
    assert summary["device_kind"] == "cpu" and summary["attempts"] == 2
    assert record["device"] == f"cpu {summary['device']}"
    # training + evaluation: at least the training seconds of every epoch
    assert record["device_seconds"] >= sum(a["train_seconds"] for a in attempts)
