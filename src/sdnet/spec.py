"""What a run may be: survival rules and data sets (torch-free).

The Snakemake layer imports this at parse time to validate the config, and the CLI uses it for
its choices. Architectures and depths live in `sdnet.networks` (the family registry); `SpecError`
is re-exported from there so that `except spec.SpecError` catches both.
"""

from __future__ import annotations

from typing import Any

from sdnet.data import registry
from sdnet.networks import SpecError

SURVIVAL_RULES = ("none", "linear", "uniform", "epoch-linear")
# A run folder's metrics.csv, one row per epoch (errors in %): written by sdnet.train.loop, read by
# sdnet.report, which must not import torch to learn it.
# grad_first_conv: the mean |gradient| of the first residual block's first convolution over the
# epoch's steps in which it ran (the paper's Fig. 7; empty if it never ran; sdnet.train.gradients).
# val_error_top5 / test_error_top5: top-5 error (ImageNet's second figure; runs of sdnet before
# them lack the columns, which readers leave empty).
METRICS_COLUMNS = ("epoch", "lr", "train_loss", "train_error", "val_error", "test_error",
                   "epoch_seconds", "blocks_computed", "grad_first_conv", "val_error_top5",
                   "test_error_top5")
# A run folder's gradients.csv, one row per epoch and residual block (1-based): the same figure
# for every block's first branch convolution, and the steps it is averaged over (0: the block
# never ran that epoch, mean_abs_grad empty).
GRADIENT_COLUMNS = ("epoch", "block", "mean_abs_grad", "active_steps")


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
