"""Pick a GPU that no other `sdnet train` on this machine is using (torch-free).

Several `sdnet train` processes started with `--device auto` on one multi-GPU machine (e.g.
`snakemake --cores 4 --resources gpu=4` without Slurm) would otherwise all pile onto GPU 0.
Each process takes an exclusive, non-blocking `flock` on one lock file per GPU and keeps it for
its whole life; the kernel drops the lock when the process exits, even on SIGKILL, so no stale
locks survive a crash. Under Slurm, CUDA_VISIBLE_DEVICES is set and no lock is needed.

Several runs per GPU (`train_resources.runs_per_gpu: k`, $SDNET_RUNS_PER_GPU): each GPU has k
slots, one lock file each (`gpu<i>.lock` is slot 0, the same file a one-run-per-GPU trainer
locks, then `gpu<i>.slot<j>.lock`), so no GPU ever holds more than k trainers. Slots are handed
out slot by slot across the GPUs (every GPU's first slot before any GPU's second), which spreads
the trainers over the GPUs. A run on several GPUs takes every slot of each of its GPUs (up to
MAX_SLOTS, the most runs per GPU there can be), so no one-GPU trainer joins a GPU it uses.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdnet import console
from sdnet.errors import SdnetError

RUNS_PER_GPU_ENV = "SDNET_RUNS_PER_GPU"  # k trainers share one GPU (set by the workflow)

DEFAULT_LOCK_DIR = Path("/tmp/sdnet-gpu-locks")
MAX_SLOTS = 8  # runs per GPU at most (sdnet.train.accounting.runs_per_gpu's bound)


@dataclass
class GpuLock:
    """A held GPU: `index` is the CUDA ordinal; the lock lasts until `release()` or process exit."""

    index: int
    path: Path
    fd: int
    slot: int = 0
    others: list[GpuLock] = field(default_factory=list)  # the GPU's other slots (whole GPU)

    def release(self) -> None:
        """Give the GPU back (closing the descriptor drops the flock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for other in self.others:
            other.release()
        self.others = []


def lock_dir() -> Path:
    """Folder of the per-GPU lock files: $SDNET_LOCK_DIR, else /tmp/sdnet-gpu-locks."""
    return Path(os.environ.get("SDNET_LOCK_DIR") or DEFAULT_LOCK_DIR)


def _ensure_dir(folder: Path) -> None:
    """Create the lock folder writable by every user, so two users can share one machine."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(folder, 0o1777)
        except PermissionError:
            pass


def lock_path(folder: Path, index: int, slot: int = 0) -> Path:
    """GPU `index`'s lock file of `slot` (slot 0: `gpu<i>.lock`, as with one run per GPU)."""
    return folder / (f"gpu{index}.lock" if slot == 0 else f"gpu{index}.slot{slot}.lock")


def try_lock_gpu(index: int, folder: Path | None = None, slot: int = 0) -> GpuLock | None:
    """Take slot `slot` of GPU `index` if no other holder has it; None if it is taken."""
    folder = lock_dir() if folder is None else Path(folder)
    _ensure_dir(folder)
    path = lock_path(folder, index, slot)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return GpuLock(index, path, fd, slot)


def try_acquire_gpu(num_gpus: int, folder: Path | None = None, slots: int = 1
                    ) -> GpuLock | None:
    """Lock a free slot among `num_gpus` GPUs of `slots` slots each (the lowest slot first,
    then the lowest GPU); None when every slot is held."""
    for slot in range(max(1, slots)):
        for index in range(num_gpus):
            held = try_lock_gpu(index, folder, slot)
            if held is not None:
                return held
    return None


def acquire_gpu(
    num_gpus: int,
    folder: Path | None = None,
    *,
    poll_seconds: float = 30.0,
    timeout: float | None = None,
    log: Callable[[str], None] = console.log,
    sleep: Callable[[float], None] = time.sleep,
    slots: int = 1,
) -> GpuLock:
    """Lock a free GPU slot (`slots` per GPU), waiting (and saying so) while all are held.

    `timeout=None` waits for ever (a queued job simply starts when a GPU frees up); otherwise an
    SdnetError is raised after `timeout` seconds.
    """
    if num_gpus < 1:
        raise SdnetError("no GPU to choose from")
    held_by = "other `sdnet train` processes" if slots <= 1 else \
        f"{slots} `sdnet train` processes each (runs_per_gpu {slots})"
    return _wait_for(
        lambda: try_acquire_gpu(num_gpus, folder, slots),
        busy=f"all {num_gpus} GPUs are busy with {held_by}",
        gave_up=f"all {num_gpus} GPUs are held by {held_by} (locks in {folder or lock_dir()})",
        poll_seconds=poll_seconds, timeout=timeout, log=log, sleep=sleep, jitter=False)


def _wait_for(take: Callable[[], Any], *, busy: str, gave_up: str, poll_seconds: float,
              timeout: float | None, log: Callable[[str], None],
              sleep: Callable[[float], None], jitter: bool) -> Any:
    """`take()` until it returns locks, saying once that it waits; an SdnetError after
    `timeout` seconds. `jitter` spreads the waits (a random part of `poll_seconds`), so that
    two jobs that collide do not collide again."""
    start = time.monotonic()
    announced = False
    while True:
        held = take()
        if held is not None:
            if announced:
                indices = [lock.index for lock in (held if isinstance(held, list) else [held])]
                log(f"sdnet: got GPU{'s' if len(indices) > 1 else ''} "
                    f"{', '.join(map(str, indices))}")
            return held
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise SdnetError(f"{gave_up}; gave up after {waited:.0f} s")
        if not announced:
            log(f"sdnet: {busy}; retrying every {poll_seconds:g} s{' or so' if jitter else ''}")
            announced = True
        nap = poll_seconds * (0.5 + random.random()) if jitter else poll_seconds
        sleep(nap if timeout is None else min(nap, max(timeout - waited, 0.0)))


# ----------------------------------------------------------------------------- several GPUs


def try_lock_whole_gpu(index: int, folder: Path | None = None) -> GpuLock | None:
    """Every slot of GPU `index` (slot 0's lock, holding the others), or None when any slot is
    held: a run on several GPUs shares none of them with a one-GPU trainer."""
    first = try_lock_gpu(index, folder, 0)
    if first is None:
        return None
    for slot in range(1, MAX_SLOTS):
        other = try_lock_gpu(index, folder, slot)
        if other is None:
            first.release()
            return None
        first.others.append(other)
    return first


def try_acquire_gpus(count: int, num_gpus: int, folder: Path | None = None
                     ) -> list[GpuLock] | None:
    """Lock `count` free GPUs among `num_gpus` (every slot of each), lowest indices first, all
    or none: when fewer are free, the ones taken are given back at once (no job holds some
    while waiting for more)."""
    held: list[GpuLock] = []
    for index in range(num_gpus):
        lock = try_lock_whole_gpu(index, folder)
        if lock is not None:
            held.append(lock)
            if len(held) == count:
                return held
    for lock in held:
        lock.release()
    return None


def acquire_gpus(
    count: int,
    num_gpus: int,
    folder: Path | None = None,
    *,
    poll_seconds: float = 30.0,
    timeout: float | None = None,
    log: Callable[[str], None] = console.log,
    sleep: Callable[[float], None] = time.sleep,
) -> list[GpuLock]:
    """`count` GPUs for one multi-GPU run, all at once, waiting while fewer are free.

    Two multi-GPU jobs never deadlock: neither keeps a GPU while it waits, and the waits are
    spread (a random part of `poll_seconds`), so one of two jobs that collide gets its set.
    """
    if count < 1 or count > num_gpus:
        raise SdnetError(f"cannot take {count} of {num_gpus} GPU(s)")
    return _wait_for(
        lambda: try_acquire_gpus(count, num_gpus, folder),
        busy=f"fewer than {count} of {num_gpus} GPUs are free",
        gave_up=f"{count} of {num_gpus} GPUs were never free at once (locks in "
                f"{folder or lock_dir()})",
        poll_seconds=poll_seconds, timeout=timeout, log=log, sleep=sleep, jitter=True)
