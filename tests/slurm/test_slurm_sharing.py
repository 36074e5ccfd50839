"""Several training runs per GPU on a real Slurm cluster (tests/slurm/cluster.sh: two fake GPUs
of 4 shards each), through the shipped profile as a user runs it:

- `gpu_sharing: shard`, k = 2: every training job asks for half a GPU's shards (no whole GPU);
  two of them train on one GPU at the same time, and never three;
- `gpu_sharing: pack`, k = 2: the two runs of a pack go out as ONE Slurm job holding one GPU,
  train side by side in it and both complete;
- a packed job `scancel`ed mid-run is retried, both runs resume from their checkpoints and
  finish exactly as the uninterrupted pack's runs (metrics.csv bar the timings), with both
  attempts in each run's log and accounting;
- `shard` on a cluster whose `sinfo` shows no shards stops with one line before any job.

The four Snakemake calls run side by side, as in test_slurm.py.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from test_slurm import (
    RESULTS,
    TIMEOUT,
    Result,
    copy_workflow,
    finish,
    interrupt,
    kill_leftovers,
    profile_args,
    rule_of,
    sacct_jobs,
    start_snakemake,
    tres,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

EPOCHS = 6
PACK_RULE = "train_pack_cifar10_resnet8_baseline_seeds0_1"
PACK_RUNS = [f"cifar10/resnet8/baseline/seed{seed}" for seed in (0, 1)]


def grid(variants: list[str], seeds: list[int], epochs: int, k: int, mode: str) -> dict:
    return {"experiment": {"datasets": ["cifar10"], "depths": [8], "variants": variants,
                           "seeds": seeds},
            "train": {"epochs": epochs},
            "train_resources": {"runs_per_gpu": k, "gpu_sharing": mode, "retries": 1}}


@dataclass
class Sharing:
    shard: Result  # 4 runs, k = 2, shards
    pack: Result  # 2 runs in one pack job
    cancelled: Result  # the same pack, its first job scancel'ed mid-run
    cancelled_job: str
    no_shards: Result  # shard on a cluster whose sinfo shows none


def start(cluster, name: str, cfg: dict, tmp_path_factory, *extra: str,
          env: dict | None = None) -> tuple:
    workdir = copy_workflow(tmp_path_factory.mktemp(name))
    proc, out = start_snakemake(workdir, *profile_args(cluster), "--configfile",
                                "config/demo.yaml", write_config(workdir, f"{name}.yaml", cfg),
                                *extra, timeout=TIMEOUT, env=env)
    return workdir, proc, out


def fake_sinfo(folder: Path) -> dict:
    """PATH with an `sinfo` that lists GPUs but no shards for `-o '%N %G'` (else the real one)."""
    folder.mkdir(parents=True, exist_ok=True)
    real = subprocess.run(["which", "sinfo"], capture_output=True, text=True,
                          check=True).stdout.strip()
    script = folder / "sinfo"
    script.write_text("#!/bin/sh\n"
                      'case "$*" in *"%N %G"*) echo "vm gpu:testgpu:2"; exit 0 ;; esac\n'
                      f'exec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return dict(os.environ, PATH=f"{folder}:{os.environ['PATH']}")


def cancel_pack_mid_run(workdir: Path, proc, out: Path) -> str:
    """scancel the pack's job once both runs wrote a checkpoint; wait for Snakemake's retry."""
    runs = [workdir / RESULTS / "runs" / run for run in PACK_RUNS]
    wait_until(lambda: all((run / "checkpoint.pt").exists() for run in runs), proc,
               TIMEOUT - 120, "a checkpoint in both runs of the pack", out)
    assert not any((run / "summary.json").exists() for run in runs), "a run finished already"
    job_id = re.findall(r"submitted with SLURM jobid (\d+)", out.read_text())[-1]
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    wait_until(lambda: "Trying to restart job" in out.read_text(), proc, 100,
               f"retry of the cancelled pack job {job_id}", out)
    return job_id


@pytest.fixture(scope="module")
def sharing(cluster, tmp_path_factory) -> Sharing:
    started = {
        "shard": start(cluster, "shard", grid(["baseline", "stochastic"], [0, 1], 3, 2, "shard"),
                       tmp_path_factory),
        "pack": start(cluster, "pack", grid(["baseline"], [0, 1], EPOCHS, 2, "pack"),
                      tmp_path_factory),
        "cancelled": start(cluster, "cancelled", grid(["baseline"], [0, 1], EPOCHS, 2, "pack"),
                           tmp_path_factory),
        "no_shards": start(cluster, "no_shards", grid(["baseline"], [0], 2, 2, "shard"),
                           tmp_path_factory,
                           env=fake_sinfo(tmp_path_factory.mktemp("bin"))),
    }
    try:
        try:
            job_id = cancel_pack_mid_run(*started["cancelled"])
        except pytest.fail.Exception as err:
            job_id = f"not cancelled: {err}"
        results = {name: finish(proc, out, workdir) for name, (workdir, proc, out)
                   in started.items()}
        return Sharing(results["shard"], results["pack"], results["cancelled"], job_id,
                       results["no_shards"])
    finally:
        for _, proc, _ in started.values():
            interrupt(proc)
        kill_leftovers([workdir for workdir, _, _ in started.values()])


def attempts(workdir: Path, run: str) -> list[dict]:
    path = workdir / RESULTS / "runs" / run / "accounting.json"
    return json.loads(path.read_text())["attempts"]


def span(attempt: dict) -> tuple[float, float]:
    return (datetime.fromisoformat(attempt["started"]).timestamp(),
            datetime.fromisoformat(attempt["updated"]).timestamp())


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:  # an end sorts before a start at the same second
        now += step
        most = max(most, now)
    return most


def metrics(workdir: Path, run: str) -> list[dict]:
    with open(workdir / RESULTS / "runs" / run / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"}
                for row in csv.DictReader(handle)]


def test_shard_puts_two_training_jobs_on_one_gpu_at_a_time_never_three(sharing):
    result = sharing.shard
    assert result.returncode == 0, result.output[-4000:]
    jobs = [job for job in sacct_jobs(result.run_id) if rule_of(job) == "train_run"]
    assert len(jobs) == 4 and {job["State"] for job in jobs} == {"COMPLETED"}, jobs
    for job in jobs:
        asked = tres(job, "ReqTRES")
        assert asked.get("gres/shard") == "2" and "gres/gpu" not in asked, job
    by_gpu: dict[str, list] = {}
    runs = [f"cifar10/resnet8/{v}/seed{s}" for v in ("baseline", "stochastic") for s in (0, 1)]
    for run in runs:
        [attempt] = attempts(result.workdir, run)
        assert attempt["cuda_visible_devices"] in ("0", "1"), attempt
        by_gpu.setdefault(attempt["cuda_visible_devices"], []).append(span(attempt))
    most = {gpu: most_at_once(spans) for gpu, spans in by_gpu.items()}
    assert max(most.values()) == 2, most  # two at the same time on one GPU, never three


def test_pack_trains_its_two_runs_side_by_side_in_one_slurm_job(sharing, cluster):
    result = sharing.pack
    assert result.returncode == 0, result.output[-4000:]
    [job] = sacct_jobs(result.run_id)
    assert rule_of(job) == PACK_RULE and job["State"] == "COMPLETED", job
    asked = tres(job, "ReqTRES")
    assert asked.get("gres/gpu") == "1" and asked.get("cpu") == "2", job
    assert (job["Partition"], job["Account"]) == (cluster.partition, cluster.account)
    [first], [second] = (attempts(result.workdir, run) for run in PACK_RUNS)
    assert first["slurm_job_id"] == second["slurm_job_id"] == job["JobID"]
    (a0, a1), (b0, b1) = span(first), span(second)
    assert max(a0, b0) < min(a1, b1), "the pack's trainers did not train at the same time"
    for run in PACK_RUNS:
        assert (result.workdir / RESULTS / "runs" / run / "summary.json").is_file()
        log = (result.workdir / RESULTS / "logs/train_run" / f"{run}.log").read_text()
        assert "one of 2 runs side by side" in log and "sdnet: done" in log


def test_cancelled_pack_resumes_both_runs_and_ends_as_if_uninterrupted(sharing):
    result, job_id = sharing.cancelled, sharing.cancelled_job
    assert job_id.isdigit(), job_id
    assert result.returncode == 0, result.output[-4000:]
    jobs = {job["JobID"]: job for job in sacct_jobs(result.run_id)}
    assert jobs.pop(job_id)["State"].startswith("CANCELLED"), jobs
    (retry,) = jobs.values()
    assert retry["State"] == "COMPLETED" and rule_of(retry) == PACK_RULE, retry
    for run in PACK_RUNS:
        log = (result.workdir / RESULTS / "logs/train_run" / f"{run}.log").read_text()
        assert log.count("=== attempt") == 2, log
        assert f"Slurm job {job_id}" in log and f"Slurm job {retry['JobID']}" in log
        resumed = re.findall(r"resuming from checkpoint at epoch (\d+)", log)
        assert len(resumed) == 1 and 1 <= int(resumed[0]) < EPOCHS, log
        tries = attempts(result.workdir, run)
        assert [a["slurm_job_id"] for a in tries] == [job_id, retry["JobID"]]
        assert metrics(result.workdir, run) == metrics(sharing.pack.workdir, run)
        assert not (result.workdir / RESULTS / "runs" / run / "checkpoint.pt").exists()


def test_shard_on_a_cluster_without_shards_is_one_line_before_any_job(sharing):
    result = sharing.no_shards
    assert result.returncode != 0
    lines = [line for line in result.output.splitlines() if "Invalid config" in line]
    assert len(lines) == 1 and "this cluster has no GPU shards" in lines[0], result.output
    assert "gpu_sharing: pack" in lines[0]
    assert "submitted with SLURM jobid" not in result.output
