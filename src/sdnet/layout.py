"""Where a run lives (torch-free): its folder, the folder's regex, the Snakemake patterns.

A run is (data set, network, variant, seed) with `network = sdnet.networks.network_name(depth,
arch)`. Its folder, relative to `results_dir`, and its training log:

    runs/<dataset>/<network>/<variant>/seed<seed>/        runs/cifar10/resnet110/stochastic/seed0
    logs/train_run/<dataset>/<network>/<variant>/seed<seed>.log

`resnet<depth>` is the depth's default family (`resnet110`, the bottleneck `resnet50`), so
folders trained before network families existed keep their names; any other family is
`<family>-resnet<depth>` (`preact-resnet110`, `cifar-resnet50`). This module is the one home of
that layout: `sdnet.grid.Run.folder`, the workflow's `RUN_DIR`, wildcard constraints and log
path (common.smk, train.smk, Snakefile) and `sdnet status --results` all read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sdnet import networks

RUNS_DIR = "runs"
# The run's part of every path, as Snakemake wildcards (and str.format fields).
RUN_KEY = "{dataset}/{network}/{variant}/seed{seed}"
RUN_FOLDER = f"{RUNS_DIR}/{RUN_KEY}"                 # relative to results_dir
TRAIN_LOG = f"logs/train_run/{RUN_KEY}.log"          # relative to results_dir


def _without_groups(pattern: str) -> str:
    """A regex with its named groups made plain (a wildcard constraint must not name groups)."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


# Wildcard constraints (also the path components the regex below accepts).
VARIANT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"   # sweep names carry values: linear-p_last0.1
NETWORK_PATTERN = _without_groups(networks.NETWORK_PATTERN)
SEED_PATTERN = r"\d+"
DATASET_PATTERN = r"[^/]+"

# A run folder's path (of any folder above it too): the last four components.
RUN_KEY_RE = re.compile(
    rf"(?:^|/)(?P<dataset>{DATASET_PATTERN})/(?P<network>{NETWORK_PATTERN})/"
    rf"(?P<variant>{VARIANT_PATTERN})/seed(?P<seed>{SEED_PATTERN})/?$")


@dataclass(frozen=True)
class RunKey:
    """What a run folder's path says: the run's identity, with its network's family and depth."""

    dataset: str
    network: str
    variant: str
    seed: int
    arch: str
    depth: int


def run_key(dataset: str, network: str, variant: str, seed: int) -> str:
    """'cifar10/resnet110/stochastic/seed0'."""
    return RUN_KEY.format(dataset=dataset, network=network, variant=variant, seed=int(seed))


def run_folder(dataset: str, network: str, variant: str, seed: int) -> str:
    """The run folder relative to results_dir: 'runs/cifar10/resnet110/stochastic/seed0'."""
    return f"{RUNS_DIR}/{run_key(dataset, network, variant, seed)}"


def parse_run_folder(path: str | Path) -> RunKey | None:
    """The identity a run folder's path gives (`.../<dataset>/<network>/<variant>/seed<seed>`),
    or None when the path is not laid out so (or names a family that is not registered)."""
    match = RUN_KEY_RE.search(Path(path).as_posix())
    if match is None:
        return None
    try:
        arch, depth = networks.parse_network(match["network"])
    except networks.SpecError:
        return None
    return RunKey(match["dataset"], match["network"], match["variant"], int(match["seed"]),
                  arch, depth)
