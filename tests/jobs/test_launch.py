"""`sdnet launch`: runs side by side (their training overlaps), every attempt's log kept under a
header in the job log and the run folder, SIGTERM forwarded then each run resumes on its own,
a failing run named while the others finish."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from sdnet.errors import SdnetError
from sdnet.jobs import packs as launch
from sdnet.train import accounting

pytestmark = pytest.mark.slow


def train_args(data: Path, out: Path, seed: int, epochs: int = 2) -> list[str]:
    return ["--data", str(data), "--dataset", "cifar10", "--depth", "8", "--epochs", str(epochs),
            "--batch-size", "32", "--lr", "0.05", "--milestones", "1", "--limit-train", "96",
            "--seed", str(seed), "--device", "cpu", "--no-amp", "--out", str(out),
            "--on-mismatch", "restart"]


def command(*runs: tuple[Path, list[str]], k: int | None = None) -> list[str]:
    words: list[str] = []
    for log, args in runs:
        words += [*([launch.SEPARATOR] if words else []), str(log), "--", *args]
    extra = ["--runs-per-gpu", str(k)] if k else []
    return [sys.executable, "-m", "sdnet", "launch", "--threads", "1", *extra, *words]


def interval(out: Path) -> tuple[float, float]:
    [attempt] = accounting.read_accounting(out)["attempts"]
    return (datetime.fromisoformat(attempt["started"]).timestamp(),
            datetime.fromisoformat(attempt["updated"]).timestamp())


def metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"}
                for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def pair(prepared_cifar10: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 3-epoch runs launched side by side (seeds 0 and 1)."""
    tmp_path = tmp_path_factory.mktemp("pair")
    runs = [(tmp_path / f"logs/seed{s}.log", train_args(prepared_cifar10, tmp_path / f"run{s}", s,
                                                         epochs=3)) for s in (0, 1)]
    done = subprocess.run(command(*runs, k=2), check=False, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_two_runs_side_by_side_each_with_its_log(pair: Path) -> None:
    tmp_path = pair
    for seed in (0, 1):
        out = tmp_path / f"run{seed}"
        assert (out / "summary.json").is_file()
        log = (tmp_path / f"logs/seed{seed}.log").read_text()
        assert log.startswith("=== attempt 1: ") and "one of 2 runs side by side" in log
        assert "sdnet: done: test error" in log
        assert (out / launch.HISTORY).read_text() == log
        record = accounting.read_accounting(out)
        # a CPU is not shared out by runs_per_gpu: each trainer counts its threads' part
        assert record["share"] == accounting.device_share("cpu", threads=1)
    (a0, a1), (b0, b1) = interval(tmp_path / "run0"), interval(tmp_path / "run1")
    # The records hold whole seconds: on a loaded machine one trainer can reach its epoch loop
    # in the second the other leaves it. Run one after the other, the second would start a
    # whole process start-up (seconds: importing torch, loading the data) after the first ended.
    assert max(a0, b0) <= min(a1, b1), "the two trainers did not train at the same time"


def test_sigterm_then_the_run_resumes_with_every_attempt_logged(prepared_cifar10, tmp_path,
                                                                pair):
    runs = [(tmp_path / "logs/seed0.log", train_args(prepared_cifar10, tmp_path / "run0", 0,
                                                     epochs=3))]
    proc = subprocess.Popen(command(*runs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "run0/checkpoint.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "run0/summary.json").exists()
    for log, _ in runs:
        log.unlink()  # as Snakemake does before the retry
    done = subprocess.run(command(*runs), check=False, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "logs/seed0.log").read_text()
    assert log.index("=== attempt 1: ") < log.index("=== attempt 2: ")
    assert log.count("=== attempt") == 2 and "resuming from checkpoint at epoch" in log
    assert log == (tmp_path / "run0" / launch.HISTORY).read_text()
    assert len(accounting.read_accounting(tmp_path / "run0")["attempts"]) == 2
    assert metrics(tmp_path / "run0") == metrics(pair / "run0")  # as if never stopped


def test_a_failing_run_is_named_and_the_other_finishes(prepared_cifar10, tmp_path) -> None:
    bad = train_args(prepared_cifar10, tmp_path / "bad", 0, epochs=1) + ["--lr", "1e30"]
    good = train_args(prepared_cifar10, tmp_path / "good", 1, epochs=1)
    done = subprocess.run(command((tmp_path / "bad.log", bad), (tmp_path / "good.log", good)),
                          check=False, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert f"sdnet launch: {tmp_path / 'bad'} stopped with exit status 2" in done.stderr
    assert "NaN/inf" in (tmp_path / "bad.log").read_text()
    assert (tmp_path / "good/summary.json").is_file()


def test_members_are_parsed_or_refused_in_one_line() -> None:
    members = launch.parse_members(["a.log", "--", "--out", "x", "::", "b.log", "--",
                                    "--out=y"])
    assert [(str(m.log), m.out) for m in members] == [("a.log", Path("x")), ("b.log", Path("y"))]
    for words in ([], ["a.log", "--out", "x"], ["a.log", "--", "--seed", "1"]):
        with pytest.raises(SdnetError, match="sdnet launch"):
            [m.out for m in launch.parse_members(words)]


def _child_commands(pid: int) -> list[str]:
    """The command lines of the direct children of `pid`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found += [command] if command else []  # a zombie has none
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_a_run_on_two_ranks_is_started_by_launch_itself(prepared_cifar10, tmp_path):
    """No `sdnet train --nproc` process between the launcher and the ranks (a Slurm job stays
    Snakemake -> sdnet launch -> srun -> ranks); their output lands in both logs."""
    log, out = tmp_path / "logs/run.log", tmp_path / "run"
    args = [*train_args(prepared_cifar10, out, 0, epochs=1), "--nproc", "2"]
    proc = subprocess.Popen(command((log, args)), stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    try:
        while proc.poll() is None:
            seen.update(_child_commands(proc.pid))
            time.sleep(0.05)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen and all("sdnet.train.worker" in cmd for cmd in seen), seen
    text = log.read_text()
    assert text.startswith("=== attempt 1: ") and "sdnet: done: test error" in text
    assert (out / launch.HISTORY).read_text() == text
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def test_a_bad_rank_flag_is_one_line_in_the_logs(prepared_cifar10, tmp_path):
    log, out = tmp_path / "run.log", tmp_path / "run"
    args = [*train_args(prepared_cifar10, out, 0), "--nproc", "2", "--nodes", "x"]
    done = subprocess.run(command((log, args)), check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "sdnet: error: sdnet train: argument --nodes: " in log.read_text()
    assert "Traceback" not in done.stderr and "stopped with exit status 2" in done.stderr
