"""`sdnet status`: states from real trainers (done, running, interrupted), stale settings, runs
not started, the JSON and text views, no torch, and its pace on 1,000 run folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchmarks.bench_status import fake_grid
from sdnet import settings
from sdnet.ops import status
from sdnet.train import runfolder

ROOT = Path(__file__).resolve().parents[2]
SDNET = Path(sys.executable).with_name("sdnet")


def _grid(tmp_path: Path) -> Path:
    """A config over config.yaml: 4 runs of ResNet-8 on the fake CIFAR-10; `slow` trains all
    540 images per epoch (a trainer we can catch running), `quick` 32."""
    override = {
        "results_dir": str(tmp_path / "results"),
        "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["quick", "slow"],
                       "seeds": [0, 1]},
        "variants": {"quick": {"survival": "none", "p_last": 1.0, "limit_train": 32},
                     "slow": {"survival": "linear", "p_last": 0.5}},
        "train": {"epochs": 30, "batch_size": 32, "milestones": [20], "device": "cpu",
                  "amp": False, "channels_last": False},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def _train(run, data: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SDNET), "train", "--data", str(data), "--out", str(results / run.folder),
         *settings.to_flags(run.settings)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


def _by_key(rows) -> dict:
    return {(r.variant, r.seed): r for r in rows}


def test_status_of_a_grid_with_real_trainers(tmp_path: Path, prepared_cifar10: Path) -> None:
    from sdnet import grid

    configs = [ROOT / "config.yaml", _grid(tmp_path)]
    cfg = grid.load_config(configs)
    results = Path(cfg["results_dir"])
    run = {(r.variant, r.seed): r for r in grid.runs(cfg)}

    done = _train(run["quick", 0], prepared_cifar10, results)
    assert done.wait(timeout=300) == 0, done.stderr.read()

    live = _train(run["slow", 0], prepared_cifar10, results)
    try:
        metrics = results / run["slow", 0].folder / runfolder.METRICS
        deadline = time.monotonic() + 240
        while not runfolder.read_metrics(metrics.parent):
            assert live.poll() is None, live.stderr.read()
            assert time.monotonic() < deadline, "the trainer wrote no epoch in time"
            time.sleep(0.2)
        rows = _by_key(status.grid_rows(configs))
        busy = rows["slow", 0]
        assert busy.state == "running", busy
        assert busy.holder["pid"] == live.pid
        assert busy.epochs == 30 and 1 <= busy.epochs_done < 30
        assert busy.eta_seconds is not None and busy.eta_seconds > 0
        assert busy.test_error is not None
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()

    rows = _by_key(status.grid_rows(configs))
    assert rows["quick", 0].state == "done"
    assert rows["quick", 0].epochs_done == rows["quick", 0].epochs == 30
    assert rows["quick", 0].best_val_error is not None
    assert rows["slow", 0].state == "interrupted" and rows["slow", 0].eta_seconds is None
    assert rows["quick", 1].state == rows["slow", 1].state == "not started"
    assert rows["quick", 1].epochs == 30 and rows["quick", 1].epochs_done == 0

    view = status.render(list(rows.values()))
    assert "4 runs: 1 done, 1 interrupted, 2 not started" in view
    assert "spent, about" in view and " left" in view

    # A changed setting makes both started runs stale, naming what changed.
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({"train": {"lr": 0.05}}))
    stale = _by_key(status.grid_rows([*configs, changed]))
    assert stale["quick", 0].state == stale["slow", 0].state == "stale"
    assert any("lr" in m for m in stale["quick", 0].mismatch)
    assert stale["quick", 1].state == "not started"

    # The CLI, from the folder holding config.yaml: JSON fields, and torch never imported.
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    code = ("import sys; from sdnet.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'status imported torch'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "status", "--json", "--configfile",
                          str(configs[1])], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    objects = json.loads(out)
    assert len(objects) == 4
    needed = {"dataset", "network", "arch", "depth", "variant", "seed", "state", "epochs_done",
              "epochs", "best_val_error", "test_error", "eta_seconds"}
    assert all(needed <= set(obj) for obj in objects)
    assert {(o["network"], o["arch"], o["depth"]) for o in objects} == {("resnet8", "cifar", 8)}
    assert sorted(o["state"] for o in objects) == ["done", "interrupted", "not started",
                                                   "not started"]

    listed = status.folder_rows(results)
    assert [(r.variant, r.seed, r.state) for r in listed] == [("quick", 0, "done"),
                                                             ("slow", 0, "interrupted")]
    # A run folder made by hand (`sdnet train --out anywhere`) is found by its files.
    mine = tmp_path / "mine" / "my-run"
    shutil.copytree(results / run["quick", 0].folder, mine)
    [found] = status.folder_rows(tmp_path / "mine")
    assert (found.dataset, found.network, found.arch, found.depth, found.variant, found.seed,
            found.state) == ("cifar10", "resnet8", "cifar", 8, "quick", 0, "done")


def test_status_outside_a_checkout_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([str(SDNET), "status"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "config.yaml" in proc.stderr
    proc = subprocess.run([str(SDNET), "status", "--results", str(tmp_path / "nope")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    proc = subprocess.run([str(SDNET), "status", "--results", str(tmp_path), "--configfile",
                           "x.yaml"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--configfile applies only without --results" in proc.stderr


def test_status_reads_a_thousand_run_folders(tmp_path: Path) -> None:
    """Every folder of a large grid read and counted (its speed: benchmarks/bench_status.py)."""
    fake_grid(tmp_path / "results", 1000)
    rows = status.folder_rows(tmp_path / "results")
    assert len(rows) == 1000
    assert {r.state for r in rows} == {"done", "interrupted"}
    summary = status.totals(rows)
    assert summary.states == {"done": 500, "interrupted": 500}
    assert summary.hours_spent == pytest.approx(1000 * 6.0 / 3600)


def test_status_tells_networks_of_one_depth_apart(tmp_path: Path) -> None:
    """A CIFAR and a bottleneck ResNet-50, and a pre-activation ResNet-110: one row each, named
    by their network, from the folders alone and from a config that chooses the families."""
    results = tmp_path / "results"
    for network in ("resnet50", "cifar-resnet50", "preact-resnet110"):
        fake_grid(results, 2, network)
    rows = status.folder_rows(results)
    assert [(r.network, r.arch, r.depth, r.seed) for r in rows if r.variant == "v0"] == [
        ("cifar-resnet50", "cifar", 50, 0), ("resnet50", "bottleneck", 50, 0),
        ("preact-resnet110", "preact", 110, 0)]
    view = status.render(rows)
    assert " cifar-resnet50 " in view and " preact-resnet110 " in view

    overlay = tmp_path / "families.yaml"
    overlay.write_text(yaml.safe_dump({
        "results_dir": str(results),
        "experiment": {"datasets": ["cifar10"], "depths": [50, 110], "archs": [None, "preact"],
                       "variants": ["v0"], "seeds": [0]},
        "variants": {"v0": {"survival": "none", "p_last": 1.0}}}))
    rows = status.grid_rows([ROOT / "config.yaml", overlay])
    assert [(r.network, r.arch, r.state) for r in rows] == [
        ("resnet50", "bottleneck", "interrupted"), ("resnet110", "cifar", "not started"),
        ("preact-resnet50", "preact", "not started"), ("preact-resnet110", "preact", "interrupted")]
    listed = json.loads(status.as_json(rows))
    assert [o["network"] for o in listed][:2] == ["resnet50", "resnet110"]


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`sdnet status | head`: stdout is a pipe whose reader has gone (EPIPE on the first write);
    the command ends quietly with 141, as a shell pipeline expects."""
    code = ("import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
            "from sdnet.cli import main; sys.exit(main(['status', '--configfile', "
            f"{str(ROOT / 'config/demo.yaml')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
