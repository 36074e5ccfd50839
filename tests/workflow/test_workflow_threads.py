"""No oversubscription (issue 29): a training job's trainer runs the threads Snakemake gave the
job (train_resources.cpus per process, capped by --cores), split over its processes, so local
trainers never add up to more threads than --cores; packs likewise (k trainers x t <= job)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_workflow import DEMO, copy_workflow, run_ok, write_overlay

JOB = re.compile(r"^(?:local)?rule (\S+):\n(.*?)(?:\n\n|\Z)", re.MULTILINE | re.DOTALL)
LAUNCH = re.compile(r"sdnet launch --threads (\d+) --runs-per-gpu (\d+)")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("threads") / "wf")


def training_jobs(workdir: Path, cores: int, cpus: int, k: int = 1) -> list[tuple[int, int, int]]:
    """(job threads, trainer --threads, trainer processes) of every training job a dry run
    plans with `--cores cores`, `train_resources.cpus: cpus`, `runs_per_gpu: k` (pack)."""
    overlay = {"train_resources": {"cpus": cpus, "runs_per_gpu": k, "gpu_sharing": "pack"}}
    name = write_overlay(workdir, f"t{cores}-{cpus}-{k}.yaml", overlay)
    out = run_ok(workdir, "-n", "-p", "--cores", str(cores), *DEMO, name)
    jobs = []
    for rule, body in JOB.findall(out):
        launch = LAUNCH.search(body)
        if not rule.startswith("train_") or launch is None:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", body, re.MULTILINE)
        processes = body.count(" :: ") + 1
        jobs.append((int(threads.group(1)) if threads else 1, int(launch.group(1)), processes))
    assert jobs, out[-3000:]
    return jobs


@pytest.mark.parametrize(("cores", "cpus", "expected"), [(1, 2, 1), (2, 2, 2), (4, 2, 2),
                                                         (2, 1, 1)])
def test_one_run_per_job_uses_the_jobs_threads(workdir, cores, cpus, expected):
    jobs = training_jobs(workdir, cores, cpus)
    assert {(threads, trainer) for threads, trainer, _ in jobs} == {(expected, expected)}


@pytest.mark.parametrize(("cores", "cpus", "per_run"), [(2, 1, 1), (2, 2, 1), (4, 2, 2),
                                                        (8, 2, 2)])
def test_a_pack_splits_its_threads_over_its_runs(workdir, cores, cpus, per_run):
    jobs = training_jobs(workdir, cores, cpus, k=2)
    for threads, trainer, processes in jobs:
        assert processes == 2 and trainer == per_run
        assert trainer * processes <= threads <= cores


def test_the_shell_command_takes_threads_from_the_job_not_the_config():
    """The rule, read as text: `--threads` is the job's (params.threads), never a resource
    that Snakemake does not cap by --cores."""
    text = (Path(__file__).resolve().parents[2] / "workflow/rules/train.smk").read_text()
    assert text.count("sdnet launch --threads {params.threads}") == 2
    assert "--threads {resources." not in text
