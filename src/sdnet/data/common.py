"""Facts about the two data sets and the small file helpers every data step shares."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sdnet import spec
from sdnet.errors import SdnetError

# CIFAR-10's class order; CINIC-10 labels are mapped onto it.
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (32, 32, 3)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    """Where the official archive lives, what it is called, and its checksum."""

    name: str
    url: str
    archive: str
    md5: str


DATASET_INFO = {
    "cifar10": DatasetInfo(
        name="cifar10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cinic10": DatasetInfo(
        name="cinic10",
        url="https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
        archive="CINIC-10.tar.gz",
        # Listed by third-party code, not confirmed against the official page: pass --md5 to
        # override (or set SDNET_CINIC10_MD5) if the official archive turns out to differ.
        md5=os.environ.get("SDNET_CINIC10_MD5", "6ee4d0c996905fe93221de577967a372"),
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Info for a data set name; SdnetError (from spec) for an unknown one."""
    spec.check_dataset(name)
    return DATASET_INFO[name]




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
