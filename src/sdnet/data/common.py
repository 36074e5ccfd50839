"""The small helpers every data step shares: missing-file messages and the decoding process pool.

Torch- and numpy-free. The facts about each data set (files, URLs, md5s, classes, image size)
live on its object in its format module (sdnet.data.registry lists them).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sdnet.errors import SdnetError

FORMAT_VERSION = 1  # of the prepared folder (meta.json "format_version")


def require_file(path: Path, hint: str) -> Path:
    """Raise SdnetError naming a missing file and what to run to make it."""
    path = Path(path)
    if not path.is_file():
        raise SdnetError(f"{path} not found; {hint}")
    return path


def default_workers() -> int:
    """The cores this process may use (the Slurm/cgroup allocation, not the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers start clean (forkserver/spawn): forking a process that has loaded
    torch, with its thread pools, can deadlock."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
