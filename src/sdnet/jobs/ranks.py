"""`sdnet train --nproc N [--nodes M]`: start the N ranks of one run and watch them (torch-free).

Where the ranks start:
- inside a Slurm allocation, outside any job step (a batch script, `salloc`, or the Snakemake
  Slurm executor's job for a multi-GPU rule): through `srun --ntasks N --nodes M
  --kill-on-bad-exit=1`, so the tasks Slurm placed on the job's nodes are the ranks of this one
  run, and Slurm ends the step when one of them fails;
- anywhere else: as N processes on this machine (M must be 1). On a machine with several GPUs
  and no CUDA_VISIBLE_DEVICES they get N GPUs that no other `sdnet train` holds, all at once or
  none (`sdnet.jobs.gpus.acquire_gpus`), and each rank uses the GPU of its local rank.

The ranks run under `sdnet.jobs.supervisor`: when one exits with an error or is killed, the others
are stopped (SIGTERM, then SIGKILL after a grace period) and the launcher exits non-zero, so no
rank is left waiting in a collective. A rank also dies with its launcher (PR_SET_PDEATHSIG), so killing the launcher
(Snakemake cancelling the job) cannot leave ranks training alone. Each rank gets torchrun's
variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...) and the run's settings as JSON in
SDNET_TRAIN_CONFIG; its entry point is `python -m sdnet.train.worker`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from sdnet import console
from sdnet.distributed import world as worlds
from sdnet.errors import SdnetError
from sdnet.jobs import gpus
from sdnet.jobs.supervisor import STATED, Child, Supervisor
from sdnet.settings import (
    TrainConfig,
    add_train_arguments,
    check_config,
    from_arguments,
    int_at_least,
)

CONFIG_ENV = "SDNET_TRAIN_CONFIG"
PARENT_ENV = "SDNET_LAUNCHER_PID"


def add_rank_arguments(parser: argparse.ArgumentParser) -> None:
    """`--nproc` and `--nodes` of `sdnet train` (and of a run `sdnet launch` starts)."""
    parser.add_argument("--nproc", type=int_at_least(1), default=1, metavar="N",
                        help="ranks of this one run (data parallel, one GPU each, or CPU ranks): "
                        "started here, or through srun inside a Slurm allocation")
    parser.add_argument("--nodes", type=int_at_least(1), default=1, metavar="M",
                        help="nodes the --nproc ranks span (inside a Slurm allocation only)")


def parse_train_arguments(args: Sequence[str]) -> tuple[TrainConfig, int, int]:
    """`sdnet train` arguments -> (settings, ranks, nodes), for a launcher that starts the
    ranks itself instead of a `sdnet train` process that would only start them."""
    parser = argparse.ArgumentParser(prog="sdnet train", add_help=False)
    add_train_arguments(parser)
    add_rank_arguments(parser)

    def one_line_error(message: str) -> None:
        raise SdnetError(f"sdnet train: {message}")

    parser.error = one_line_error  # type: ignore[method-assign]
    parsed = parser.parse_args(list(args))
    return from_arguments(parsed), parsed.nproc, parsed.nodes


def config_to_env(config: TrainConfig) -> str:
    """The settings as JSON (paths as text) for the ranks' environment."""
    return json.dumps({key: str(value) if isinstance(value, Path) else value
                       for key, value in dataclasses.asdict(config).items()})


def config_from_env(env: Mapping[str, str] | None = None) -> TrainConfig:
    env = os.environ if env is None else env
    text = env.get(CONFIG_ENV)
    if not text:
        raise SdnetError(f"{CONFIG_ENV} is not set: start ranks with `sdnet train --nproc N`")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {key: value for key, value in json.loads(text).items() if key in fields}
    return TrainConfig(**values)


def in_slurm_allocation(env: Mapping[str, str] | None = None) -> bool:
    """Inside a Slurm job but outside any step: where `srun` places the ranks on the job's nodes.
    (The Snakemake Slurm executor strips every SLURM_* but the job id before it runs a job.)"""
    env = os.environ if env is None else env
    return bool(env.get("SLURM_JOB_ID")) and not env.get("SLURM_STEP_ID")


def _check(config: TrainConfig, nproc: int, nodes: int) -> TrainConfig:
    """Everything that can be refused before a rank starts, one line each."""
    if nproc < 1 or nodes < 1:
        raise SdnetError(f"--nproc and --nodes must be positive, got {nproc} and {nodes}")
    if worlds.detect().many:
        raise SdnetError("this process is already one rank of many (torchrun or srun set "
                         "RANK/WORLD_SIZE or SLURM_STEP_NUM_TASKS): leave out --nproc/--nodes")
    if nproc % nodes:
        raise SdnetError(f"--nproc {nproc} ranks do not split evenly over --nodes {nodes}")
    config = check_config(config)
    worlds.check_batch(config.batch_size, nproc)
    meta_path = config.data / "meta.json"
    if not meta_path.is_file():
        from sdnet.data import load_prepared

        load_prepared(config.data)  # the data package's one line
    try:
        meta = json.loads(meta_path.read_text())
        images = int(meta["counts"]["train"])
    except (OSError, ValueError, KeyError, TypeError):
        return config  # the ranks' own reading of the data says what is wrong
    if config.limit_train is not None:
        images = min(images, config.limit_train)
    worlds.check_last_batch(images, config.batch_size, nproc)
    return config


def launch(config: TrainConfig, nproc: int, nodes: int = 1, logs: Sequence[IO[bytes]] = ()
           ) -> int:
    """Train `config` on `nproc` ranks over `nodes` nodes; the exit status of the run. `logs`:
    files the ranks' output is copied to (`sdnet launch`'s), else the terminal."""
    config = _check(config, nproc, nodes)
    if in_slurm_allocation():
        return _srun(config, nproc, nodes, logs)
    if nodes > 1:
        raise SdnetError(f"--nodes {nodes} needs a Slurm allocation (sbatch or salloc): the "
                         "ranks of other nodes start through srun; on one machine leave it out")
    env = dict(os.environ)
    held = _local_gpus(config, nproc, env)
    try:
        return _run_local(config, nproc, env, logs)
    finally:
        for lock in held:
            lock.release()


# ----------------------------------------------------------------------------- Slurm


def srun_command(nproc: int, nodes: int, cpus_per_task: int) -> list[str]:
    """The job step whose tasks are the ranks (the step inherits the job's GPUs)."""
    return ["srun", f"--ntasks={nproc}", f"--nodes={nodes}", f"--ntasks-per-node={nproc // nodes}",
            f"--cpus-per-task={cpus_per_task}", "--mem=0", "--kill-on-bad-exit=1",
            "--export=ALL", sys.executable, "-m", "sdnet.train.worker"]


def _srun(config: TrainConfig, nproc: int, nodes: int, logs: Sequence[IO[bytes]]) -> int:
    threads = os.environ.get("OMP_NUM_THREADS", "")
    cpus = int(threads) if threads.isdigit() and int(threads) > 0 else 1
    command = srun_command(nproc, nodes, cpus)
    env = dict(os.environ, **{CONFIG_ENV: config_to_env(config)})
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", PARENT_ENV):
        env.pop(name, None)
    _say(f"sdnet: starting {nproc} ranks on {nodes} node(s): {' '.join(command[:7])} ...", logs)
    step = Child("job step", command, env, logs)
    rc = Supervisor([step], stop_all_on_failure=True).run()
    if rc not in (0, STATED):
        _say(f"sdnet: error: the job step of {nproc} ranks failed (srun exit status {rc})", logs)
    return _run_status(rc)


# ----------------------------------------------------------------------------- one machine


def _local_gpus(config: TrainConfig, nproc: int, env: dict[str, str]) -> list[gpus.GpuLock]:
    """CUDA_VISIBLE_DEVICES for the ranks: N GPUs locked all-or-none on a multi-GPU machine."""
    device = config.device
    if device == "cpu":
        return []
    if device not in ("auto", "cuda"):
        raise SdnetError(f"--device {device} names one device; with --nproc use auto, cuda or "
                         "cpu (each rank takes the GPU of its local rank)")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    count = _cuda_device_count()
    if count == 0:
        if device == "cuda":
            raise SdnetError("--device cuda asked for, but CUDA is not available here")
        return []  # auto without CUDA: CPU ranks (gloo)
    if count < nproc:
        raise SdnetError(f"--nproc {nproc} needs {nproc} GPUs, but "
                         f"{'CUDA_VISIBLE_DEVICES shows' if visible else 'this machine has'} "
                         f"{count}")
    if visible is not None:
        return []  # the caller chose the GPUs
    held = gpus.acquire_gpus(nproc, count)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(lock.index) for lock in held)
    console.log(f"sdnet: using GPUs {env['CUDA_VISIBLE_DEVICES']} (locks in {gpus.lock_dir()})")
    return held


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_env(base: Mapping[str, str], rank: int, nproc: int, port: int,
             config_json: str) -> dict[str, str]:
    """torchrun's variables for one local rank, plus the settings and the launcher's PID."""
    env = dict(base)
    env.update(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank),
               LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env[CONFIG_ENV] = config_json
    env[PARENT_ENV] = str(os.getpid())
    return env


def _run_local(config: TrainConfig, nproc: int, env: dict[str, str],
               logs: Sequence[IO[bytes]]) -> int:
    port, config_json = free_port(), config_to_env(config)
    command = [sys.executable, "-m", "sdnet.train.worker"]
    children = [Child(f"rank {rank}", command, rank_env(env, rank, nproc, port, config_json),
                      logs) for rank in range(nproc)]
    supervisor = Supervisor(children, stop_all_on_failure=True)  # one run: all or none
    status = supervisor.run()
    first = supervisor.first_failed
    if first is not None and first.code != STATED:  # 2: the rank printed its own line
        _say(f"sdnet: error: {first.name} (PID {first.proc.pid}) {_how(first.code)}; "
                    f"stopped the other {nproc - 1} rank(s)", logs)
    return _run_status(status)


def _say(text: str, logs: Sequence[IO[bytes]]) -> None:
    """A launcher's line on stderr and, under `sdnet launch`, in the run's logs with its ranks'
    output (where a user reads what happened to the run)."""
    console.log(text)
    for handle in logs:
        with contextlib.suppress(OSError):
            handle.write(f"{text}\n".encode())
            handle.flush()


def _how(code: int) -> str:
    return (f"was killed by {signal.Signals(code - 128).name}" if code > 128
            else f"exited with status {code}")


def _run_status(status: int) -> int:
    """A run's status, whoever started its ranks: 2 when a rank said what went wrong (as
    `sdnet train` does), 1 for any other failure."""
    return status if status in (0, STATED) else 1


def die_with_parent(env: Mapping[str, str] | None = None) -> None:
    """In a rank the local launcher started: get SIGKILL when the launcher dies (Linux)."""
    env = os.environ if env is None else env
    parent = env.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the launcher died before prctl took effect
        os._exit(1)
