"""`sdnet launch`: start `sdnet train` runs side by side in one job, each keeping every attempt's log.

The workflow runs every training job through it: one run (a `train_run` job) or a pack of k runs
sharing one GPU (`sdnet.jobs.sharing`). For each run it

- keeps the history of every attempt in the run folder (`train.log`, not a workflow output, so
  neither Snakemake's retry nor a rerun deletes it: Snakemake removes a job's declared log before
  each attempt), under a header `=== attempt N: <time> on <host> ...`,
- writes that history into the job's declared log and goes on appending this attempt to both, so
  the log Snakemake shows (and `show-failed-logs` prints) holds every attempt,
- starts the trainer (`python -m sdnet train ...`) with `--threads` threads (OMP_NUM_THREADS,
  MKL_NUM_THREADS, ...: Snakemake sets them to the whole job's threads) and
  `$SDNET_RUNS_PER_GPU` set, under `sdnet.jobs.supervisor` (signals forwarded, one exit-code
  policy), and waits for all of them: the runs are independent, one failing stops no other.

Each trainer resumes on its own from its checkpoint on the next attempt. The exit status is 0
when every run finished, else the first failing run's (one line on stderr names it).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from sdnet.errors import SdnetError
from sdnet.jobs import ranks
from sdnet.jobs.gpus import RUNS_PER_GPU_ENV
from sdnet.jobs.supervisor import Child, Supervisor

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
HISTORY = "train.log"  # in the run folder: every attempt's output
SEPARATOR = "::"
HEADER = re.compile(r"^=== attempt (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Member:
    """One run of a launch: its job log and its `sdnet train` arguments."""

    log: Path
    args: tuple[str, ...]

    @property
    def out(self) -> Path:
        args = list(self.args)
        for i, arg in enumerate(args):
            if arg == "--out" and i + 1 < len(args):
                return Path(args[i + 1])
            if arg.startswith("--out="):
                return Path(arg.split("=", 1)[1])
        raise SdnetError(f"sdnet launch: no --out among the train arguments of {self.log}")


def parse_members(words: Sequence[str]) -> list[Member]:
    """`LOG -- TRAIN_ARGS... [:: LOG -- TRAIN_ARGS...]` -> members."""
    members, chunk = [], []
    for word in [*words, SEPARATOR]:
        if word != SEPARATOR:
            chunk.append(word)
            continue
        if not chunk:
            continue
        if len(chunk) < 2 or chunk[1] != "--":
            raise SdnetError("sdnet launch: each run is LOG -- TRAIN_ARGS..., runs separated "
                             f"by {SEPARATOR}")
        members.append(Member(Path(chunk[0]), tuple(chunk[2:])))
        chunk = []
    if not members:
        raise SdnetError("sdnet launch: no run given")
    return members


def _header(attempt: int, runs: int) -> str:
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    job = os.environ.get("SLURM_JOB_ID")
    where = f"{socket.gethostname()}" + (f", Slurm job {job}" if job else "")
    shared = f", one of {runs} runs side by side" if runs > 1 else ""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_text = f", CUDA_VISIBLE_DEVICES={gpu}" if gpu is not None else ""
    return f"=== attempt {attempt}: {when} on {where}{gpu_text}{shared} ===\n"


def _open_logs(member: Member, runs: int) -> list[IO[bytes]]:
    """The run's history (appended) and its job log (the history so far, then this attempt)."""
    history_path = member.out / HISTORY
    history_path.parent.mkdir(parents=True, exist_ok=True)
    member.log.parent.mkdir(parents=True, exist_ok=True)
    before = history_path.read_bytes() if history_path.is_file() else b""
    attempt = len(HEADER.findall(before.decode("utf-8", "replace"))) + 1
    header = _header(attempt, runs).encode()
    history = open(history_path, "ab")  # noqa: SIM115 (closed by launch)
    log = open(member.log, "ab")  # noqa: SIM115
    if before and not before.endswith(b"\n"):
        history.write(b"\n")
    log.write(before + (b"" if not before or before.endswith(b"\n") else b"\n") + header)
    history.write(header)
    log.flush()
    history.flush()
    return [history, log]


def launch(members: Sequence[Member], *, threads: int | None = None,
           runs_per_gpu: int | None = None, python: str = sys.executable) -> int:
    """Train every member side by side (see the module doc); the exit status."""
    env = dict(os.environ)
    if threads:  # Snakemake sets these to the job's threads: k trainers would oversubscribe
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    if runs_per_gpu:
        env[RUNS_PER_GPU_ENV] = str(runs_per_gpu)
    if len(members) == 1 and _on_ranks(members[0]):  # started here: one process less
        return _launch_ranks(members[0], env)
    logs = [_open_logs(member, len(members)) for member in members]
    children = [Child(str(member.out), [python, "-m", "sdnet", "train", *member.args], env,
                      files) for member, files in zip(members, logs)]
    supervisor = Supervisor(children, stop_all_on_failure=False)  # the runs are independent
    try:
        status = supervisor.run()
    finally:
        for handle in (handle for files in logs for handle in files):
            handle.close()
    for member, child in zip(members, children):
        if child.code:
            print(f"sdnet launch: {member.out} stopped with exit status {child.code}; see "
                  f"{member.log}", file=sys.stderr, flush=True)
    return status


def _on_ranks(member: Member) -> bool:
    """Whether the member's `sdnet train` arguments ask for ranks (`--nproc`, `--nodes`)."""
    return any(arg.startswith(("--nproc", "--nodes")) for arg in member.args)


def _launch_ranks(member: Member, env: dict[str, str]) -> int:
    """The ranks of one run, started by this process (not by a `sdnet train --nproc` child:
    a Slurm job is Snakemake -> sdnet launch -> srun -> ranks), their output in the logs."""
    logs = _open_logs(member, 1)
    saved = dict(os.environ)
    os.environ.update(env)  # the threads and GPU share the ranks inherit
    try:
        config, nproc, nodes = ranks.parse_train_arguments(member.args)
        status = ranks.launch(config, nproc, nodes, logs)
    except SdnetError as err:  # as `sdnet train` would say it, in the run's logs too
        for handle in logs:
            handle.write(f"sdnet: error: {err}\n".encode())
        status = 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for handle in logs:
            handle.close()
    if status:
        print(f"sdnet launch: {member.out} stopped with exit status {status}; see "
              f"{member.log}", file=sys.stderr, flush=True)
    return status
