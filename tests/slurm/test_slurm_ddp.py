"""One run on 2 GPUs through `snakemake --profile slurm` on the real test cluster: ONE job that
asks for 2 GPUs and 2 tasks, whose 2 tasks (started by `srun` inside the job) are the 2 ranks of
one run, never 2 copies of it (snakemake-executor-plugin-slurm #316, #459).

Needs a node with 2 GPUs (`Gres=gpu:...:2`, fake ones do: the ranks train on the CPU with gloo);
skips, saying so, on a cluster whose node has fewer.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdnet import spec

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "profiles", "slurm")
RESULTS = "results/demo"
RUN = "cifar10/resnet8/stochastic/seed0"
TIMEOUT = 480
TWO_GPUS = {
    "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["stochastic"],
                   "seeds": [0]},
    "networks": {"resnet8": {"gpus": 2}},  # this network's runs: one run on 2 GPUs
    "train": {"epochs": 2, "milestones": [1]},
    "train_resources": {"retries": 0, "cpus": 1},
}
# A finished run folder of the workflow (tests/test_train.py's files, plus sdnet launch's
# train.log); tensorboard/ with tensorboard installed.
FINISHED = {"accounting.json", "evaluations.csv", "final_state.pt", "gradients.csv", "metrics.csv",
            "model.pt",
            "run.json", "summary.json", "train.lock", "train.log"}


def node_gpus() -> int:
    """The most GPUs one node of the cluster has (sinfo's GRES column, e.g. gpu:testgpu:2)."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    counts = [int(m.group(1)) for line in out.split() for item in line.split(",")
              if (m := re.fullmatch(r"gpu(?::[^:()]+)?:(\d+)(\(.*\))?", item))]
    return max(counts, default=0)


def profile_args(cluster) -> list[str]:
    """As tests/slurm/test_slurm.py: the shipped profile, the test cluster's partition and
    account in place of its two site lines, short status checks."""
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    resources = dict(profile["default-resources"])
    resources.update(slurm_partition=cluster.partition, slurm_account=cluster.account)
    overrides = [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
                 for key, value in resources.items()]
    return ["--profile", "slurm", "--default-resources", *overrides,
            "--slurm-init-seconds-before-status-checks", "2",
            "--seconds-between-status-checks", "2"]


def sacct(*args: str) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-P", "--starttime", "now-6hours", *args],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return list(csv.DictReader(io.StringIO(out), delimiter="|"))


def tres(job: dict[str, str], column: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job[column].split(",") if "=" in item)


@pytest.fixture(scope="module")
def two_gpu_run(cluster, tmp_path_factory):
    gpus = node_gpus()
    if gpus < 2:
        pytest.skip(f"the test cluster's node has {gpus} GPU(s); one run on 2 GPUs needs a node "
                    "with Gres=gpu:2 (tests/slurm/cluster.sh)")
    workdir = tmp_path_factory.mktemp("two_gpus")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, workdir / name)
    (workdir / "two-gpus.yaml").write_text(yaml.safe_dump(TWO_GPUS))
    command = ["timeout", "-s", "INT", "-k", "30", str(TIMEOUT), sys.executable, "-m",
               "snakemake", *profile_args(cluster), "--configfile", "config/demo.yaml",
               "two-gpus.yaml", "--", f"{RESULTS}/runs/{RUN}/summary.json"]
    result = subprocess.run(command, cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, check=False)
    return workdir, result


def test_a_two_gpu_run_is_one_job_of_two_tasks_whose_step_is_the_two_ranks(two_gpu_run):
    _, result = two_gpu_run
    assert result.returncode == 0, result.stdout[-4000:]
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout).group(1)
    jobs = sacct("-X", "--name", run_id, "--format=JobID,State,ReqTRES,AllocTRES,Comment")
    train = [job for job in jobs if job["Comment"].startswith("rule_train_run")]
    assert len(train) == 1, jobs  # one job for the run, not one per GPU
    (job,) = train
    assert job["State"] == "COMPLETED", job
    assert tres(job, "ReqTRES").get("gres/gpu") == "2", job
    assert tres(job, "AllocTRES").get("gres/gpu") == "2", job
    steps = sacct("-j", job["JobID"], "--format=JobID,NTasks,State")
    ranks = [step for step in steps if re.fullmatch(rf"{job['JobID']}\.\d+", step["JobID"])]
    assert [(s["NTasks"], s["State"]) for s in ranks] == [("2", "COMPLETED")], steps


def test_exactly_one_run_folder_that_reads_like_a_one_rank_run(two_gpu_run):
    workdir, result = two_gpu_run
    assert result.returncode == 0, result.stdout[-4000:]
    runs = [p.parent for p in (workdir / RESULTS / "runs").rglob("summary.json")]
    folder = workdir / RESULTS / "runs" / RUN
    assert runs == [folder]
    names = {p.name for p in folder.iterdir()}
    assert FINISHED <= names <= FINISHED | {"tensorboard"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    assert json.loads((folder / "accounting.json").read_text())["attempts"][0]["devices"] == 2
    with (folder / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(spec.METRICS_COLUMNS) and len(rows) == 2
    log = (workdir / RESULTS / "logs/train_run" / f"{RUN}.log").read_text()
    assert "starting 2 ranks on 1 node(s): srun --ntasks=2" in log
    assert log.count("sdnet: done:") == 1 and "2 ranks)" in log
