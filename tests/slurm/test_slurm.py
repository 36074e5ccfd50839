"""`snakemake --profile slurm` on a real Slurm cluster (tests/slurm/cluster.sh start).

The shipped profile slurm/config.yaml is used as a user uses it: `--profile slurm` from the
workflow's folder, with sacct status polling. Only what a user edits for their site (partition
and account) and short status-check delays are passed on the command line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKFLOW_FILES = ("Snakefile", "config.yaml", "config", "workflow", "profiles", "slurm")
DEMO = ("config/demo.yaml", str(HERE / "small.yaml"))
RESULTS = "results/demo"
RUN = "cifar10/resnet8/baseline/seed0"  # the run the failure tests train
SUMMARY_TEX = f"{RESULTS}/tables/summary.tex"
TIMEOUT = 480  # seconds per Snakemake call (they run side by side); SIGINT, SIGKILL 30 s later


@dataclass
class Result:
    """A finished Snakemake call: exit status and everything it printed."""

    returncode: int
    output: str
    workdir: Path

    @property
    def run_id(self) -> str:
        """The executor's run ID: the Slurm job name of every job it submitted."""
        found = re.search(r"SLURM run ID: (\S+)", self.output)
        assert found, f"no 'SLURM run ID' in the output:\n{self.output[-3000:]}"
        return found.group(1)

    def rules(self) -> dict[str, set[str]]:
        """Rule name -> {'rule'} (ran through the executor) and/or {'localrule'} (ran here)."""
        seen: dict[str, set[str]] = {}
        for kind, name in re.findall(r"^(localrule|rule) (\w+):$", self.output, re.MULTILINE):
            seen.setdefault(name, set()).add(kind)
        return seen


def copy_workflow(dest: Path) -> Path:
    """The workflow as a user has it (this checkout), in a folder of its own."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake_command(*args: str, timeout: int) -> list[str]:
    """Snakemake from this venv, bounded: SIGINT at `timeout` (it cancels its Slurm jobs)."""
    return ["timeout", "-s", "INT", "-k", "30", str(timeout),
            sys.executable, "-m", "snakemake", *args]


def start_snakemake(workdir: Path, *args: str, timeout: int,
                    env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    """Snakemake in the background, printing to workdir/snakemake.out."""
    out = workdir / "snakemake.out"
    with out.open("w") as stream:
        proc = subprocess.Popen(snakemake_command(*args, timeout=timeout), cwd=workdir,
                                stdout=stream, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env=env)
    return proc, out


def finish(proc: subprocess.Popen, out: Path, workdir: Path) -> Result:
    proc.wait()
    return Result(proc.returncode, out.read_text(), workdir)


def profile_args(cluster) -> list[str]:
    """`--profile slurm` plus the test cluster's partition and account in place of the profile's
    two site lines (the rest of its default-resources as shipped), and short status checks."""
    profile = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    resources = dict(profile["default-resources"])
    assert {"slurm_partition", "slurm_account"} <= resources.keys(), \
        "slurm/config.yaml lost its partition/account lines"
    resources.update(slurm_partition=cluster.partition, slurm_account=cluster.account)
    overrides = [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
                 for key, value in resources.items()]
    return ["--profile", "slurm", "--default-resources", *overrides,
            "--slurm-init-seconds-before-status-checks", "2",
            "--seconds-between-status-checks", "2"]


def write_config(workdir: Path, name: str, cfg: dict) -> str:
    path = workdir / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def sacct_jobs(run_id: str) -> list[dict[str, str]]:
    """Every job of one Snakemake run, as the accounting database recorded it."""
    fields = "JobID,State,Comment,Partition,Account,ReqTRES,AllocTRES"
    out = subprocess.run(
        ["sacct", "-X", "-P", "--name", run_id, "--starttime", "now-6hours",
         f"--format={fields}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    return list(csv.DictReader(io.StringIO(out), delimiter="|"))


def rule_of(job: dict[str, str]) -> str:
    """The rule name the executor put in the job's comment (rule_<name>_wildcards_...)."""
    found = re.match(r"rule_(.+?)(_wildcards_|$)", job["Comment"])
    assert found, f"job {job['JobID']} has no rule comment: {job['Comment']!r}"
    return found.group(1)


def tres(job: dict[str, str], column: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job[column].split(",") if "=" in item)


def mask_timings(tex: str) -> str:
    """summary.tex with the timing cells (columns headed 'Hours' or 'Time ratio') blanked."""
    lines, timing = [], None
    for line in tex.splitlines():
        cells = line.split("&")
        if len(cells) > 1 and ("Hours" in line or "Time" in line):
            timing = {i for i, cell in enumerate(cells) if "Hours" in cell or "Time" in cell}
        elif timing and len(cells) > max(timing):
            cells = ["<time>" if i in timing else cell for i, cell in enumerate(cells)]
        lines.append("&".join(cells))
    return "\n".join(lines)


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C for Snakemake (it cancels its Slurm jobs), then wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, seconds: float,
               what: str, out: Path, hint: str = "") -> None:
    """Poll `condition`; on timeout stop Snakemake and fail with its output."""
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"Snakemake ended (rc {proc.returncode}) before {what}:\n"
                        f"{out.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            interrupt(proc)
            pytest.fail(f"no {what} within {seconds:.0f} s{hint}:\n{out.read_text()[-4000:]}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Every scenario at once: the fake GPU has one slot, so Slurm runs the training jobs one after the
# other; the local steps, Snakemake start-ups and status polling of the scenarios overlap.
# ---------------------------------------------------------------------------------------------


def one_run_config(**train) -> dict:
    """One training run (baseline, seed 0) with one retry."""
    return {
        "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["baseline"],
                       "seeds": [0]},
        "train": train,
        "train_resources": {"retries": 1},
    }


@dataclass
class Scenarios:
    slurm: Result  # the small demo grid through `--profile slurm`
    local: Result  # the same grid with `--cores 2`
    cancelled: Result  # one run whose first Slurm job was scancel'ed mid-run
    cancelled_job: str  # its Slurm job ID, or why it could not be cancelled
    failing: Result  # one run whose training fails on every attempt


def start_one_run(cluster, name: str, cfg: dict, tmp_path_factory) -> tuple:
    workdir = copy_workflow(tmp_path_factory.mktemp(name))
    return workdir, *start_snakemake(
        workdir, *profile_args(cluster), "--configfile", "config/demo.yaml",
        write_config(workdir, f"{name}.yaml", cfg), "--", f"{RESULTS}/runs/{RUN}/summary.json",
        timeout=TIMEOUT)


def cancel_mid_run(workdir: Path, proc: subprocess.Popen, out: Path) -> str:
    """scancel the run's Slurm job once it wrote a checkpoint; wait until Snakemake retries it."""
    wait_until(lambda: (workdir / RESULTS / "runs" / RUN / "checkpoint.pt").exists(), proc,
               TIMEOUT - 120, "checkpoint.pt in the run folder", out)
    job_id = re.findall(r"submitted with SLURM jobid (\d+)", out.read_text())[-1]
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    wait_until(lambda: "Trying to restart job" in out.read_text(), proc, 100,
               f"retry of the cancelled Slurm job {job_id}", out,
               " (sacct says 'CANCELLED by <uid>': is slurm/cancelled_jobs.smk included?)")
    return job_id


def kill_leftovers(workdirs: list[Path]) -> None:
    """Kill what still runs from these folders: with proctrack/linuxproc, the job's Snakemake
    outlives a scancel of its batch shell (reparented to init, Slurm loses track of it)."""
    marks = [f"{workdir}/" for workdir in workdirs]
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if any(mark in cmdline for mark in marks) and int(proc.name) != os.getpid():
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def scenarios(cluster, tmp_path_factory) -> Scenarios:
    cancel_cfg = one_run_config(epochs=6)
    if cluster.gpu_type:  # ask for the GPU model, as a user does in config.yaml
        cancel_cfg["train_resources"]["gpu_model"] = cluster.gpu_type
    # lr 1e30: the loss becomes NaN in the first epoch and the trainer stops with an error
    # (1e12 overflowed with batch-norm scales of 1, not always with the original U(0, 1)).
    failing = start_one_run(cluster, "failing", one_run_config(lr=1.0e30), tmp_path_factory)
    cancelled = start_one_run(cluster, "cancelled", cancel_cfg, tmp_path_factory)
    slurm_dir = copy_workflow(tmp_path_factory.mktemp("slurm_demo"))
    local_dir = copy_workflow(tmp_path_factory.mktemp("local_demo"))
    slurm = start_snakemake(slurm_dir, *profile_args(cluster), "--configfile", *DEMO,
                            timeout=TIMEOUT)
    local = start_snakemake(local_dir, "--cores", "2", "--configfile", *DEMO, timeout=TIMEOUT)
    procs = [slurm[0], local[0], cancelled[1], failing[1]]
    try:
        try:
            job_id = cancel_mid_run(*cancelled)
        except pytest.fail.Exception as err:
            job_id = f"not cancelled: {err}"
        return Scenarios(finish(*slurm, slurm_dir), finish(*local, local_dir),
                         finish(*cancelled[1:], cancelled[0]), job_id,
                         finish(*failing[1:], failing[0]))
    finally:
        for proc in procs:
            interrupt(proc)
        kill_leftovers([slurm_dir, local_dir, cancelled[0], failing[0]])


def test_every_training_job_went_through_sbatch_with_one_gpu(scenarios, cluster):
    slurm = scenarios.slurm
    assert slurm.returncode == 0, slurm.output[-4000:]
    jobs = sacct_jobs(slurm.run_id)
    runs = re.findall(r"^rule train_run:$", slurm.output, re.MULTILINE)
    train_jobs = [job for job in jobs if rule_of(job) == "train_run"]
    assert len(runs) == 2 and len(train_jobs) == 2, jobs
    for job in train_jobs:
        assert job["State"] == "COMPLETED", job
        assert (job["Partition"], job["Account"]) == (cluster.partition, cluster.account), job
        assert tres(job, "ReqTRES").get("gres/gpu") == "1", job
        assert tres(job, "AllocTRES").get("gres/gpu") == "1", job


def test_light_rules_ran_locally(scenarios):
    slurm = scenarios.slurm
    assert slurm.returncode == 0, slurm.output[-4000:]
    rules = slurm.rules()
    assert rules.pop("train_run") == {"rule"}
    light = {"make_fake_archive", "download_dataset", "prepare_dataset", "aggregate_metrics",
             "plot_figures", "render_tables"}
    assert light <= rules.keys(), rules
    assert all(kinds == {"localrule"} for kinds in rules.values()), rules
    assert {rule_of(job) for job in sacct_jobs(slurm.run_id)} == {"train_run"}


def test_summary_table_equals_the_local_run_apart_from_timings(scenarios):
    slurm, local = scenarios.slurm, scenarios.local
    assert slurm.returncode == 0, slurm.output[-4000:]
    assert local.returncode == 0, local.output[-4000:]
    on_slurm = (slurm.workdir / SUMMARY_TEX).read_text()
    here = (local.workdir / SUMMARY_TEX).read_text()
    assert "ResNet-8" in on_slurm and "$" in on_slurm
    assert mask_timings(on_slurm) == mask_timings(here)


def test_cancelled_training_job_is_retried_and_resumes_from_its_checkpoint(scenarios, cluster):
    result, job_id = scenarios.cancelled, scenarios.cancelled_job
    assert job_id.isdigit(), job_id
    assert result.returncode == 0, result.output[-4000:]
    jobs = {job["JobID"]: job for job in sacct_jobs(result.run_id)}
    assert jobs.pop(job_id)["State"].startswith("CANCELLED"), jobs
    (retry,) = jobs.values()
    assert retry["State"] == "COMPLETED", retry
    if cluster.gpu_type:
        assert tres(retry, "ReqTRES").get(f"gres/gpu:{cluster.gpu_type}") == "1", retry
    log = (result.workdir / RESULTS / "logs/train_run" / f"{RUN}.log").read_text()
    resumed = re.findall(r"resuming from checkpoint at epoch (\d+)", log)
    assert len(resumed) == 1 and 1 <= int(resumed[0]) < 6, log
    run_dir = result.workdir / RESULTS / "runs" / RUN
    with (run_dir / "metrics.csv").open() as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]
    assert (run_dir / "summary.json").exists() and not (run_dir / "checkpoint.pt").exists()


def test_training_job_that_fails_for_good_stops_snakemake_naming_rule_and_run(scenarios):
    result = scenarios.failing
    assert result.returncode != 0
    assert "Error in rule train_run" in result.output
    assert f"{RESULTS}/runs/{RUN}/summary.json" in result.output
    jobs = sacct_jobs(result.run_id)
    assert [job["State"] for job in jobs] == ["FAILED", "FAILED"], jobs  # first try and retry
    assert not (result.workdir / RESULTS / "runs" / RUN / "summary.json").exists()
    # Retries are the submitting Snakemake's: a job does not rerun the training in place.
    slurm_logs = {path.stem: path.read_text() for path in
                  (result.workdir / ".snakemake/slurm_logs/rule_train_run").rglob("*.log")}
    assert slurm_logs.keys() == {job["JobID"] for job in jobs}
    for job_id, text in slurm_logs.items():
        assert "Trying to restart job" not in text, f"Slurm job {job_id} retried inside:\n{text}"
