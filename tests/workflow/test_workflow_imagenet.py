"""ImageNet through the workflow: the paper preset's DAG, and a demo-sized grid end to end
on the CPU (fake files in the official layout -> download -> prepare -> train -> tables)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_workflow import copy_workflow, job_counts, run_ok, write_overlay

TINY = {
    "results_dir": "results/inet",
    "resources_dir": "resources/inet",
    "experiment": {"datasets": ["imagenet"], "depths": [18], "archs": ["imagenet"],
                   "variants": ["stochastic"], "seeds": [0]},
    "datasets": {"imagenet": {"fake": {"per_class": 4, "seed": 0}, "val_size": 5,
                              "max_side": 128, "split_seed": 0}},
    "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "milestones": [1], "device": "cpu",
              "amp": False, "channels_last": False},
    "train_resources": {"cpus": 2, "mem_mb": 4000, "retries": 0},
    "data_workers": 1,
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def test_imagenet_preset_dry_run(workdir: Path) -> None:
    output = run_ok(workdir, "-n", "-p", "--configfile", "config/paper/imagenet.yaml")
    counts = job_counts(output)
    assert {k: counts.get(k) for k in ("download_dataset", "prepare_dataset", "train_run")} == \
        {"download_dataset": 3, "prepare_dataset": 1, "train_run": 2}
    assert "runs/imagenet/imagenet-resnet152/stochastic/seed0" in output
    assert "--arch imagenet" in output and "--depth 152" in output
    assert "--nproc 4" in output and "--milestones 30 60 90" in output
    assert "--max-side 512" in output and "--val-size 10000" in output
    assert "Config warning" not in output


@pytest.mark.slow
def test_demo_sized_imagenet_end_to_end(workdir: Path) -> None:
    overlay = write_overlay(workdir, "inet.yaml", TINY)
    run_ok(workdir, "results/inet/tables/summary.md", "--cores", "2", "--configfile", overlay,
           timeout=900)
    run = workdir / "results/inet/runs/imagenet/imagenet-resnet18/stochastic/seed0"
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["test_error_top5"] != ""
    meta = workdir / "resources/inet/data/imagenet/meta.json"
    assert meta.is_file() and (meta.parent / "train.jpegs").is_file()
    assert "imagenet" in (workdir / "results/inet/tables/summary.md").read_text().lower()
