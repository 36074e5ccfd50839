"""How reports name things: data sets, networks, survival rules, variants, and their order.

Every table and figure orders and labels runs through these functions, so a variant reads the
same (`stochastic: linear decay, p_L = 0.5`) and sits in the same place everywhere. A "row" of
a report is one (data set, network, augmentation) triple: a CIFAR and a bottleneck ResNet-50
are two rows ("CIFAR ResNet-50", "ResNet-50"), and runs with and without augmentation are
different experiments even on the same network.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import pandas as pd

from sdnet import networks, spec
from sdnet.data.registry import dataset_names, get_dataset
from sdnet.errors import SdnetError
from sdnet.settings import default_augment

SURVIVAL_NAMES = {"none": "constant depth", "linear": "linear decay",
                  "uniform": "uniform", "epoch-linear": "decay over epochs"}
# How a family other than the depth's own is named before "ResNet-<depth>"; a family not listed
# here is named by its registered title (sdnet.networks), less "ResNet".
FAMILY_NAMES = {"cifar": "CIFAR", "bottleneck": "Bottleneck", "preact": "Pre-act",
                "preact-bottleneck": "Pre-act bottleneck"}


def parse_network(network: str) -> tuple[str, int]:
    """(family, depth) of a network name (`preact-resnet110`), also of a family this process
    has not registered."""
    try:
        return networks.parse_network(network)
    except networks.SpecError:
        match = re.fullmatch(networks.NETWORK_PATTERN, network)
        if match is None:
            raise SdnetError(f"{network!r} is not a network name") from None
        depth = int(match["depth"])
        return match["arch"] or networks.default_arch(depth), depth


class Row(NamedTuple):
    """One row of the summary table, one panel of a figure."""

    dataset: str
    network: str
    augment: bool

    @property
    def depth(self) -> int:
        return parse_network(self.network)[1]

    @property
    def arch(self) -> str:
        """The network's family, resolved (`cifar` for resnet110)."""
        return parse_network(self.network)[0]


def dataset_name(dataset: str) -> str:
    """CIFAR-10 for cifar10 (the data set's title, from the registry); unknown names pass
    through."""
    try:
        return get_dataset(dataset).title
    except SdnetError:
        return dataset


def network_name(depth: int, arch: str | None = None) -> str:
    """ResNet-110 for the depth's own family (as its folder is resnet110); another family is
    named before it: CIFAR ResNet-50, Pre-act ResNet-110, Pre-act bottleneck ResNet-164."""
    name = f"ResNet-{int(depth)}"
    if arch is None or arch == networks.default_arch(int(depth)):
        return name
    prefix = FAMILY_NAMES.get(arch)
    if prefix is None:
        try:
            words = networks.family(arch).title.removesuffix("ResNet").strip()
        except SdnetError:
            words = arch
        prefix = words[:1].upper() + words[1:] or arch
    return f"{prefix} {name}"


def network_title(network: str) -> str:
    """The report's name of a network name: 'Pre-act ResNet-110' for preact-resnet110."""
    arch, depth = parse_network(network)
    return network_name(depth, arch)


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


def _family_rank(arch: str) -> int:
    """The depth's own family first, then registration order (sdnet.networks)."""
    names = networks.families()
    return names.index(arch) if arch in names else len(names)


def rows(runs: pd.DataFrame) -> list[Row]:
    """The report rows present in runs: known data sets first (registry order), shallow first,
    then the depth's own family, then the others in registration order."""
    known = list(dataset_names())
    triples = {Row(str(d), str(n), bool(a))
               for d, n, a in runs[["dataset", "network", "augment"]].itertuples(index=False)}

    def order(row: Row) -> tuple:
        own = row.arch == networks.default_arch(row.depth)
        return (known.index(row.dataset) if row.dataset in known else len(known), row.dataset,
                row.depth, not own, _family_rank(row.arch), row.network, not row.augment)

    return sorted(triples, key=order)


def in_row(frame: pd.DataFrame, row: Row) -> pd.DataFrame:
    """The part of runs.csv (or epochs.csv with an augment column) in one report row."""
    return frame[(frame.dataset == row.dataset) & (frame.network == row.network)
                 & (frame.augment == row.augment)]


def row_network(runs: pd.DataFrame, row: Row) -> str:
    """'ResNet-110', with '(no augmentation)' where the row departs from the data set's default."""
    name = network_title(row.network)
    if row.augment != default_augment(row.dataset):
        name += ", augmented" if row.augment else ", no augmentation"
    return name


def row_title(runs: pd.DataFrame, row: Row) -> str:
    """'CIFAR-10, ResNet-110': a figure panel's title, a long table's group heading."""
    return f"{dataset_name(row.dataset)}, {row_network(runs, row)}"
