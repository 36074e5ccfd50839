"""What a run may be: architectures, depths, survival rules and data sets.

This module is torch-free on purpose: the Snakemake layer imports it at parse time to validate the
config (depth 57 must stop Snakemake before any job), and the CLI uses it for its choices.
`sdnet.models` builds the networks these names describe.

Depth -> architecture (the one documented table):

| depth            | family (`--arch`) | network                                                    |
| ---------------- | ----------------- | ---------------------------------------------------------- |
| 50               | bottleneck        | the seed's Bottleneck ResNet-50: stages 3,4,6,3 of          |
|                  |                   | bottlenecks (expansion 4), widths 64/128/256/512, 3x3 stem |
| 6n+2 (20 ... 110 | cifar             | He et al. CIFAR ResNet: 3 stages of n basic blocks,         |
|  ... 1202)       |                   | widths 16/32/64 (110 = the paper's ResNet-110)             |

`--arch` overrides the family: `--arch bottleneck` accepts the bottleneck depths in
`BOTTLENECK_STAGES`; `--arch cifar` accepts any 6n+2 with n >= 1.
"""

from __future__ import annotations

from typing import Any

from sdnet.data import registry
from sdnet.errors import SdnetError

ARCHS = ("cifar", "bottleneck")
SURVIVAL_RULES = ("none", "linear", "uniform", "epoch-linear")
# A run folder's metrics.csv, one row per epoch (errors in %): written by sdnet.train, read by
# sdnet.report, which must not import torch to learn it.
METRICS_COLUMNS = ("epoch", "lr", "train_loss", "train_error", "val_error", "test_error",
                   "epoch_seconds", "blocks_computed")

# Bottleneck ResNets for 32x32 inputs: depth -> blocks per stage (3 convs per block + stem + fc).
BOTTLENECK_STAGES: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
# Depths whose default family is the bottleneck one; every other 6n+2 depth is a CIFAR ResNet.
DEFAULT_BOTTLENECK_DEPTHS = (50,)


class SpecError(SdnetError, ValueError):
    """A run setting that names no network or rule; the message says what is valid."""


def valid_depths_text() -> str:
    """Human-readable list of accepted depths, used in every 'bad depth' message."""
    return (
        "valid depths: 50 (bottleneck ResNet-50), or 6n+2 for a CIFAR ResNet "
        "(20, 32, 44, 56, 110, 1202, ...); with --arch bottleneck: "
        + ", ".join(str(d) for d in BOTTLENECK_STAGES)
    )


def resolve_arch(depth: int, arch: str | None = None) -> str:
    """Return the architecture family for `depth`, or raise SpecError listing valid depths."""
    if arch is not None and arch not in ARCHS:
        raise SpecError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise SpecError(f"depth must be a positive integer, got {depth!r}; {valid_depths_text()}")
    if arch is None:
        arch = "bottleneck" if depth in DEFAULT_BOTTLENECK_DEPTHS else "cifar"
    if arch == "bottleneck" and depth not in BOTTLENECK_STAGES:
        raise SpecError(f"depth {depth} fits no bottleneck ResNet; {valid_depths_text()}")
    if arch == "cifar" and (depth < 8 or (depth - 2) % 6 != 0):
        raise SpecError(f"depth {depth} fits no architecture; {valid_depths_text()}")
    return arch


def cifar_blocks_per_stage(depth: int) -> int:
    """n in depth = 6n + 2."""
    resolve_arch(depth, "cifar")
    return (depth - 2) // 6


def check_survival(rule: str, p_last: float) -> None:
    """Raise SpecError for an unknown rule or a p_L outside (0, 1]."""
    if rule not in SURVIVAL_RULES:
        raise SpecError(f"unknown survival rule {rule!r}; choose one of {', '.join(SURVIVAL_RULES)}")
    if not (0.0 < float(p_last) <= 1.0):
        raise SpecError(f"p_L (--p-last) must be in (0, 1], got {p_last}")


def check_dataset(name: str) -> None:
    """Raise SpecError for a data set sdnet cannot prepare (one line listing the registered ones)."""
    dataset_spec(name)


# --- Data sets: the registry's (sdnet.data.registry; torch- and numpy-free) -------------------

def dataset_spec(name: str) -> registry.Dataset:
    """The object of data set `name` (its title, files, num_classes, image_size, augment,
    max_val_size, ...); SpecError listing the valid names for an unknown one."""
    try:
        return registry.get_dataset(name)
    except registry.DatasetError as err:
        raise SpecError(str(err)) from None


def __getattr__(name: str) -> Any:
    """`DATASETS`: the registered data set names, read when asked (a data set registered after
    this module was imported is included)."""
    if name == "DATASETS":
        return registry.dataset_names()
    raise AttributeError(f"module 'sdnet.spec' has no attribute {name!r}")
