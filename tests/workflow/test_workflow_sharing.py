"""Several runs per GPU in the workflow, locally: the jobs of `gpu_sharing: shard` and `pack`,
bad settings stopped before any job, `--resources gpu=1` admitting k training jobs (their
training overlaps; with k = 1 it never does), a pack training its runs side by side, and the
cost table and `sdnet status` cost of the result."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from report_runs import markdown_table
from test_workflow import DEMO, copy_workflow, dry_run, run_ok, snakemake, write_overlay

from sdnet.jobs import packs as launch
from sdnet.ops import status
from sdnet.train import accounting

TWO_RUNS = {"results_dir": "results/two",
            "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["baseline"],
                           "seeds": [0, 1]},
            "train": {"epochs": 2, "limit_train": 320}}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


def sharing(workdir: Path, name: str, k: int, mode: str, **grid) -> str:
    return write_overlay(workdir, name, {**grid, "train_resources": {"runs_per_gpu": k,
                                                                   "gpu_sharing": mode}})


def test_shard_keeps_one_job_per_run_and_pack_makes_one_per_k_seeds(workdir: Path) -> None:
    shard = dry_run(workdir, *DEMO, sharing(workdir, "shard.yaml", 2, "shard"))
    assert shard["train_run"] == 16
    packed = dry_run(workdir, *DEMO, sharing(workdir, "pack.yaml", 2, "pack"))
    packs = {rule: n for rule, n in packed.items() if rule.startswith("train_pack_")}
    assert "train_run" not in packed and len(packs) == 8 and set(packs.values()) == {1}
    assert "train_pack_cifar10_resnet20_stochastic_seeds0_1" in packs
    three = dry_run(workdir, *DEMO, sharing(workdir, "pack3.yaml", 3, "pack"))
    assert sum(rule.startswith("train_pack_") for rule in three) == 8  # 2 seeds: packs of 2
    output = run_ok(workdir, "results/demo/runs/cifar10/resnet8/baseline/seed1/summary.json",
                    "-n", "-p", *DEMO, "pack.yaml")
    assert "sdnet launch --threads 1 --runs-per-gpu 2" in output
    assert output.count(" :: ") == 1 and "--seed 0" in output and "--seed 1" in output


@pytest.mark.parametrize(("setting", "expected"), [
    ("runs_per_gpu: 0", "train_resources.runs_per_gpu: 0 is less than the minimum of 1"),
    ("runs_per_gpu: 9", "train_resources.runs_per_gpu: 9 is greater than the maximum of 8"),
    ("runs_per_gpu: 1.5", "train_resources.runs_per_gpu: 1.5 is not of type 'integer'"),
    ("gpu_sharing: mps", "train_resources.gpu_sharing: 'mps' is not one of ['shard', 'pack']"),
])
def test_bad_sharing_settings_stop_before_any_job(workdir: Path, setting: str,
                                                  expected: str) -> None:
    (workdir / "bad.yaml").write_text(f"train_resources:\n  {setting}\n")
    result = snakemake(workdir, "--cores", "1", *DEMO, "bad.yaml")
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if "Invalid config" in line]
    assert lines == [f"Invalid config: {expected} (see src/sdnet/grid/config.schema.yaml)"]
    assert not (workdir / "resources").exists() and not (workdir / "results").exists()


def intervals(workdir: Path, results: str) -> list[tuple[float, float]]:
    """Each run's training interval (its one attempt), from accounting.json."""
    spans = []
    for record in sorted((workdir / results / "runs").rglob(accounting.ACCOUNTING)):
        [attempt] = json.loads(record.read_text())["attempts"]
        spans.append((datetime.fromisoformat(attempt["started"]).timestamp(),
                       datetime.fromisoformat(attempt["updated"]).timestamp()))
    return spans


def overlap(spans: list[tuple[float, float]]) -> bool:
    (a0, a1), (b0, b1) = spans
    return max(a0, b0) < min(a1, b1)


@pytest.mark.slow
def test_one_gpu_admits_k_training_jobs_locally(workdir: Path) -> None:
    """`--cores 2 --resources gpu=1`: one training job at a time with k = 1, two with k = 2."""
    one = write_overlay(workdir, "one.yaml", {**TWO_RUNS, "results_dir": "results/one"})
    run_ok(workdir, "--cores", "2", "--resources", "gpu=1", *DEMO, one, timeout=400)
    assert not overlap(intervals(workdir, "results/one"))
    two = sharing(workdir, "two.yaml", 2, "shard", **TWO_RUNS)
    output = run_ok(workdir, "--cores", "2", "--resources", "gpu=1", *DEMO, two, timeout=400)
    assert "runs_per_gpu 2: --resources gpu=1 admits 2 training jobs, 2 per GPU" in output
    assert overlap(intervals(workdir, "results/two"))
    log = (workdir / "results/two/logs/train_run/cifar10/resnet8/baseline/seed0.log").read_text()
    assert log.startswith("=== attempt 1: ") and "sdnet: done" in log


@pytest.mark.slow
def test_a_pack_trains_its_runs_side_by_side_and_reports_their_cost(workdir: Path) -> None:
    pack = sharing(workdir, "pack.yaml", 2, "pack", **TWO_RUNS)
    target = "results/two/tables/cost.md"
    output = run_ok(workdir, target, "--cores", "2", "--resources", "gpu=1", *DEMO, pack,
                    timeout=400)
    assert "rule train_pack_cifar10_resnet8_baseline_seeds0_1:" in output
    assert "rule train_run:" not in output
    assert overlap(intervals(workdir, "results/two"))
    for seed in (0, 1):
        run = workdir / f"results/two/runs/cifar10/resnet8/baseline/seed{seed}"
        log = (workdir / f"results/two/logs/train_run/cifar10/resnet8/baseline/seed{seed}.log")
        assert "one of 2 runs side by side" in log.read_text()
        assert (run / launch.HISTORY).read_text() == log.read_text()
        summary = json.loads((run / "summary.json").read_text())
        assert summary["device_kind"] == "cpu" and summary["device_seconds"] > 0
    _, line, total = markdown_table((workdir / target).read_text())
    assert line[:4] == ["CIFAR-10", "ResNet-8", "baseline", "2"] and line[4].startswith("cpu ")
    assert total[2:4] == ["Total", "2"]
    rows = status.folder_rows(workdir / "results/two")
    assert [row.state for row in rows] == ["done", "done"]
    assert all(row.device_hours > 0 and row.device_hours_left == 0 for row in rows)
