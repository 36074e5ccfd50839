"""Who this process is in a run of several ranks, read from the environment (torch-free).

A process is one rank of many when it was started
- by torchrun (or by `sdnet train --nproc N`, which sets the same variables): RANK,
  WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
- as a task of a Slurm job step (`srun --ntasks N`): SLURM_PROCID, SLURM_STEP_NUM_TASKS,
  SLURM_LOCALID, SLURM_STEP_NODELIST, SLURM_JOB_ID. The step's task count is used, not
  SLURM_NTASKS: a batch script of an `--ntasks 2` job sees SLURM_NTASKS=2 too, but it is one
  process, and taking it for rank 0 of 2 would wait for a rank that never comes.
Anything else is a run of one rank, exactly as before this package existed.

Errors: a setting every rank reads alike (a batch that does not divide, say) fails on every rank
at once; only rank 0 prints it (`EveryRankError`), so the log holds one line, not N. Any other
error of a rank > 0 is printed with its rank.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sdnet.errors import SdnetError

# Seconds a rank waits in a collective (all-reduce, broadcast) before it gives up with an error;
# override with SDNET_DIST_TIMEOUT. The launchers stop the other ranks much sooner when one dies.
DEFAULT_TIMEOUT_SECONDS = 600
PORT_BASE, PORT_SPAN = 20000, 20000  # Slurm steps: MASTER_PORT from the job id, in this range


class EveryRankError(SdnetError):
    """An error every rank raises alike (same settings, same reduced numbers): only rank 0
    prints it."""


class FollowerStop(EveryRankError):
    """Rank 0 stopped before training (a busy folder, a refused checkpoint, an error): the other
    ranks stop quietly, rank 0 says why."""


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank 0 of 1 unless started as one rank of many."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    source: str = "single"  # "single", "torchrun" (also `--nproc`) or "slurm"

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes the run folder and logs."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.size > 1


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None or text == "":
        if default is None:
            raise SdnetError(f"{name} is not set, but the other rank variables are")
        return default
    try:
        return int(text)
    except ValueError:
        raise SdnetError(f"{name}={text!r} is not a number") from None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: 'gpu[03-05,9],cpu1' -> 'gpu03' (zero padding kept)."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise SdnetError(f"cannot read the Slurm node list {nodelist!r}")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_port(job_id: int, step_id: int = 0) -> int:
    """The rendezvous port of a Slurm step: the same on every task, different for other jobs."""
    return PORT_BASE + (job_id * 7 + step_id) % PORT_SPAN


def detect(env: Mapping[str, str] | None = None) -> World:
    """This process's rank and world size from torchrun's or a Slurm step's variables."""
    env = os.environ if env is None else env
    if env.get("WORLD_SIZE") and _int(env, "WORLD_SIZE") > 1:
        size = _int(env, "WORLD_SIZE")
        return _checked(World(rank=_int(env, "RANK"), size=size,
                              local_rank=_int(env, "LOCAL_RANK", 0),
                              local_size=_int(env, "LOCAL_WORLD_SIZE", size),
                              master_addr=env.get("MASTER_ADDR") or "127.0.0.1",
                              master_port=_int(env, "MASTER_PORT", 29500), source="torchrun"))
    if env.get("SLURM_STEP_NUM_TASKS") and _int(env, "SLURM_STEP_NUM_TASKS") > 1:
        size = _int(env, "SLURM_STEP_NUM_TASKS")
        nodes = _int(env, "SLURM_STEP_NUM_NODES", 1)
        job, step = _int(env, "SLURM_JOB_ID", 0), _int(env, "SLURM_STEP_ID", 0)
        addr = env.get("MASTER_ADDR") or first_host(env.get("SLURM_STEP_NODELIST") or "localhost")
        return _checked(World(rank=_int(env, "SLURM_PROCID"), size=size,
                              local_rank=_int(env, "SLURM_LOCALID", 0),
                              local_size=max(size // max(nodes, 1), 1), master_addr=addr,
                              master_port=_int(env, "MASTER_PORT", slurm_port(job, step)),
                              source="slurm"))
    return World()


def _checked(world: World) -> World:
    if not 0 <= world.rank < world.size:
        raise SdnetError(f"rank {world.rank} is outside a world of {world.size} ranks")
    return world


def timeout_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long a collective may wait for the other ranks (SDNET_DIST_TIMEOUT, seconds)."""
    env = os.environ if env is None else env
    text = env.get("SDNET_DIST_TIMEOUT")
    if not text:
        return float(DEFAULT_TIMEOUT_SECONDS)
    try:
        value = float(text)
    except ValueError:
        raise SdnetError(f"SDNET_DIST_TIMEOUT={text!r} is not a number of seconds") from None
    if value <= 0:
        raise SdnetError(f"SDNET_DIST_TIMEOUT must be positive, got {text}")
    return value


def check_batch(batch_size: int, ranks: int) -> None:
    """The global batch is split evenly over the ranks: refuse one that does not divide."""
    if ranks > 1 and batch_size % ranks:
        raise EveryRankError(
            f"--batch-size {batch_size} does not split evenly over {ranks} ranks (each rank "
            f"trains on an equal part of the global batch); use a multiple of {ranks}")


def check_last_batch(images: int, batch_size: int, ranks: int) -> None:
    """Each rank needs at least one image of every batch, the epoch's last one included."""
    last = images % batch_size or batch_size
    if ranks > 1 and last < ranks:
        raise EveryRankError(
            f"the last batch of an epoch holds {last} of {images} training images, fewer than "
            f"the {ranks} ranks; change --batch-size or --limit-train so that it holds at least "
            f"{ranks}")


def check_world_size(ckpt: dict, ranks: int, path: object) -> None:
    """A checkpoint resumes only on the world size that wrote it: each rank's RNG states, and
    without sync_bn the batch-norm statistics, belong to that split of the batch."""
    saved = int(ckpt.get("world_size") or 1)
    if saved != ranks:
        raise EveryRankError(
            f"{path} was written by a run of {saved} rank(s), this run has {ranks}: resume it "
            f"with {saved} (`sdnet train --nproc {saved}`, or `gpus: {saved}` in the workflow's "
            "config), or pass --restart to start over")


FOLLOWER_GRACE_SECONDS = 5.0


def follower_grace(seconds: float = FOLLOWER_GRACE_SECONDS) -> None:
    """A rank > 0 that stops quietly on an error rank 0 reports waits a moment first, so that
    rank 0 prints its line and exits before the launcher (or srun) stops the other ranks."""
    import time

    time.sleep(seconds)


def lost_ranks_line(err: BaseException, world: World | None = None) -> str | None:
    """One line for a collective that failed because another rank is gone (gloo: "Connection
    reset by peer", NCCL aborts, timeouts) instead of its traceback; None for any other error or
    a run of one rank. Whoever started the ranks names the one that failed."""
    try:
        world = detect() if world is None else world
    except SdnetError:
        return None
    names = {cls.__name__ for cls in type(err).__mro__}
    text = str(err)
    if not world.many or not isinstance(err, RuntimeError) or not (
            names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}
            or any(word in text for word in ("gloo", "NCCL", "Connection reset", "Connection closed",
                                             "Timed out", "timed out"))):
        return None
    detail = " ".join(text.split())
    detail = detail.split("] ", 1)[-1].split(". ")[0][:160]  # gloo: "[.../pair.cc:545] Read..."
    return (f"sdnet: error: rank {world.rank} of {world.size}: lost the other ranks "
            f"({detail}); stopping")


def error_line(err: SdnetError, world: World | None = None) -> str | None:
    """The `sdnet: error: ...` line of this process, or None where rank 0 prints it instead."""
    try:
        world = detect() if world is None else world
    except SdnetError:
        world = World()
    if world.is_main:
        return f"sdnet: error: {err}"
    if isinstance(err, EveryRankError):
        return None
    return f"sdnet: error: rank {world.rank} of {world.size}: {err}"


def guarded(call: Callable[[], int]) -> int:
    """Run a command: an SdnetError is one line and exit status 2 (on a rank > 0 of a
    multi-rank run, only errors rank 0 does not print too: `error_line`)."""
    try:
        return call()
    except SdnetError as err:
        line = error_line(err)
        if line:
            print(line, file=sys.stderr)
        else:
            follower_grace()  # rank 0 says it and exits first: its line is never cut off
        return 2
    except KeyboardInterrupt:
        print("sdnet: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as err:  # a rank of many whose peers are gone: one line, no traceback
        line = lost_ranks_line(err)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1
