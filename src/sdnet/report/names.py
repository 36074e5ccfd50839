"""How reports name things: data sets, networks, survival rules, variants, and their order.

Every table and figure orders and labels runs through these functions, so a variant reads the
same (`stochastic: linear decay, p_L = 0.5`) and sits in the same place everywhere. A "row" of
a report is one (data set, depth, augmentation) triple: runs with and without augmentation are
different experiments even on the same network.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from sdnet import spec
from sdnet.data.registry import dataset_names, get_dataset
from sdnet.errors import SdnetError

SURVIVAL_NAMES = {"none": "constant depth", "linear": "linear decay",
                  "uniform": "uniform", "epoch-linear": "decay over epochs"}


class Row(NamedTuple):
    """One row of the summary table, one panel of a figure."""

    dataset: str
    depth: int
    augment: bool


def dataset_name(dataset: str) -> str:
    """CIFAR-10 for cifar10 (the data set's title, from the registry); unknown names pass
    through."""
    try:
        return get_dataset(dataset).title
    except SdnetError:
        return dataset


def default_augment(dataset: str) -> bool:
    """Whether sdnet trains this data set with augmentation unless told otherwise."""
    try:
        return get_dataset(dataset).augment
    except SdnetError:
        return True


def network_name(depth: int, arch: str | None = None) -> str:
    """ResNet-110; the family is named only where it is not the depth's default one."""
    name = f"ResNet-{int(depth)}"
    try:
        default = spec.resolve_arch(int(depth))
    except SdnetError:
        return name  # only one family has this depth
    if arch and arch != default:
        name += " (bottleneck)" if arch == "bottleneck" else " (basic blocks)"
    return name


def rule_name(survival: str) -> str:
    """'linear decay' for linear."""
    return SURVIVAL_NAMES.get(survival, survival)


def rule_rank(survival: str) -> int:
    """Constant depth first, then the paper's rule, then the others (sdnet.spec's order)."""
    rules = spec.SURVIVAL_RULES
    return rules.index(survival) if survival in rules else len(rules)


def variant_order(runs: pd.DataFrame) -> list[str]:
    """Constant depth first, then the paper's rule, then the others; p_L falling within a rule."""
    first = runs.drop_duplicates("variant")
    keyed = sorted((rule_rank(r.survival), -float(r.p_last), r.variant)
                   for r in first.itertuples())
    return [variant for *_, variant in keyed]


def rows(runs: pd.DataFrame) -> list[Row]:
    """The report rows present in runs: known data sets first (registry order), shallow first."""
    known = list(dataset_names())
    triples = {Row(str(d), int(n), bool(a))
               for d, n, a in runs[["dataset", "depth", "augment"]].itertuples(index=False)}
    return sorted(triples, key=lambda r: (known.index(r.dataset) if r.dataset in known
                                          else len(known), r.dataset, r.depth, not r.augment))


def in_row(frame: pd.DataFrame, row: Row) -> pd.DataFrame:
    """The part of runs.csv (or epochs.csv with an augment column) in one report row."""
    return frame[(frame.dataset == row.dataset) & (frame.depth == row.depth)
                 & (frame.augment == row.augment)]


def row_network(runs: pd.DataFrame, row: Row) -> str:
    """'ResNet-110', with '(no augmentation)' where the row departs from the data set's default."""
    archs = sorted(set(in_row(runs, row).arch))
    name = " / ".join(network_name(row.depth, a) for a in archs) or network_name(row.depth)
    if row.augment != default_augment(row.dataset):
        name += ", augmented" if row.augment else ", no augmentation"
    return name


def row_title(runs: pd.DataFrame, row: Row) -> str:
    """'CIFAR-10, ResNet-110': a figure panel's title, a long table's group heading."""
    return f"{dataset_name(row.dataset)}, {row_network(runs, row)}"
