"""The Slurm cluster the `slurm` tests submit to, and the CI rule that they never skip.

The cluster is the one `tests/slurm/cluster.sh start` runs (its settings are read from
$SDNET_SLURM_DIR/cluster.env), or any cluster the environment points at: SLURM_CONF (or the default
/etc/slurm/slurm.conf), SDNET_SLURM_PARTITION and SDNET_SLURM_ACCOUNT. Outside CI the tests skip
when no cluster answers; with CI=true a skipped slurm test is reported as a failure.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRATCH = Path(os.environ.get("SDNET_SLURM_DIR", "/tmp/sdnet-slurm"))
START_HINT = "start one with: tests/slurm/cluster.sh start"


@dataclass(frozen=True)
class Cluster:
    """What a test passes on the command line in place of the profile's two site lines."""

    partition: str
    account: str
    gpu_type: str | None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def load_cluster_env(path: Path) -> None:
    """Export the `export KEY=VALUE` lines cluster.sh wrote, unless already set."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            os.environ.setdefault(key, value)


load_cluster_env(SCRATCH / "cluster.env")


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def unreachable_reason(partition: str | None, account: str | None) -> str | None:
    """Why no usable cluster answers, or None when slurmctld, slurmdbd and the names are fine."""
    if not partition or not account:
        return f"SDNET_SLURM_PARTITION/SDNET_SLURM_ACCOUNT are not set ({START_HINT})"
    try:
        ping = _run("scontrol", "ping")
        if ping.returncode != 0 or "UP" not in ping.stdout:
            return f"no Slurm controller answers `scontrol ping` ({START_HINT})"
        assoc = _run("sacctmgr", "-n", "-P", "list", "association", f"account={account}",
                     "format=account")
        if assoc.returncode != 0:
            return f"Slurm accounting (slurmdbd) does not answer: {assoc.stderr.strip()}"
        if account not in assoc.stdout.split():
            return f"Slurm account {account!r} is not registered"
        part = _run("sinfo", "-h", "-p", partition, "-o", "%a")
        if "up" not in part.stdout.split():
            return f"Slurm partition {partition!r} is missing or down"
    except FileNotFoundError as err:
        return f"Slurm client commands are not installed ({err.filename}); {START_HINT}"
    except subprocess.TimeoutExpired as err:
        return f"`{' '.join(err.cmd)}` did not answer within 30 s"
    return None


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    partition = os.environ.get("SDNET_SLURM_PARTITION")
    account = os.environ.get("SDNET_SLURM_ACCOUNT")
    reason = unreachable_reason(partition, account)
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI=true but no Slurm cluster is usable: {reason}", pytrace=False)
        pytest.skip(f"no Slurm cluster: {reason}")
    return Cluster(partition, account, os.environ.get("SDNET_SLURM_GPU_TYPE") or None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skipped slurm test is a failure, whatever skipped it."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and item.get_closest_marker("slurm") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"slurm test skipped although CI=true: {reason}"
