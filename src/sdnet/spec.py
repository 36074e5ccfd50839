"""What a run may be: survival rules and data sets (torch-free).

The Snakemake layer imports this at parse time to validate the config, and the CLI uses it for
its choices. Architectures and depths live in `sdnet.networks` (the family registry); `SpecError`
is re-exported from there so that `except spec.SpecError` catches both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnet.networks import SpecError

SURVIVAL_RULES = ("none", "linear", "uniform", "epoch-linear")
DATASETS = ("cifar10", "cifar100", "cinic10", "svhn")
# A run folder's metrics.csv, one row per epoch (errors in %): written by sdnet.train, read by
# sdnet.report, which must not import torch to learn it.
METRICS_COLUMNS = ("epoch", "lr", "train_loss", "train_error", "val_error", "test_error",
                   "epoch_seconds", "blocks_computed")


def check_survival(rule: str, p_last: float) -> None:
    """Raise SpecError for an unknown rule or a p_L outside (0, 1]."""
    if rule not in SURVIVAL_RULES:
        raise SpecError(f"unknown survival rule {rule!r}; choose one of {', '.join(SURVIVAL_RULES)}")
    if not (0.0 < float(p_last) <= 1.0):
        raise SpecError(f"p_L (--p-last) must be in (0, 1], got {p_last}")


def check_dataset(name: str) -> None:
    """Raise SpecError for a data set sdnet cannot prepare."""
    if name not in DATASETS:
        raise SpecError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


# --- Data set facts (torch-free: the workflow and the trainer read them; md5s and URLs live in
# sdnet.data.common.DATASET_INFO, keyed by these file names) ---------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    """What the rest of sdnet needs to know about a data set without reading it."""

    name: str                 # "svhn"
    title: str                # "SVHN": the name reports print
    files: tuple[str, ...]    # the official raw files, each downloaded and md5-checked on its own
    num_classes: int
    max_val_size: int | None  # largest val_size the real set allows; None: val_size does not apply
    augment: bool             # default augmentation (crop + flip): the paper's CIFAR setup only


DATASET_SPECS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", "CIFAR-10", ("cifar-10-python.tar.gz",), 10, 49_999, True),
    "cifar100": DatasetSpec("cifar100", "CIFAR-100", ("cifar-100-python.tar.gz",), 100, 49_999,
                            True),
    # val_size subsamples CINIC-10's shipped valid split of 90,000 images.
    "cinic10": DatasetSpec("cinic10", "CINIC-10", ("CINIC-10.tar.gz",), 10, 90_000, True),
    # The validation set is val_per_class images of each class from train (and extra).
    "svhn": DatasetSpec("svhn", "SVHN", ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"),
                        10, None, False),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The facts of data set `name`; SpecError listing the valid names for an unknown one."""
    check_dataset(name)
    return DATASET_SPECS[name]
