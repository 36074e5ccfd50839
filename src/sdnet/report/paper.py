"""The numbers Huang et al. (2016) report, each with where in the paper it comes from.

One table (`PAPER_RESULTS`); a run is matched to an entry by what it trained (data set, network
family and depth, survival rule, p_L, augmentation), never by its variant's name, so a sweep's
`linear-p_last0.5` finds the paper's linear-decay number, `uniform` at p_L = 0.5 finds none, and
neither does a pre-activation ResNet-110 (the paper trained the basic-block CIFAR ResNets only).
Test errors are percentages. The facts are collected in the project's REFERENCE.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdnet import networks

PAPER_CITATION = "Huang et al. 2016"
PAPER_P_LAST = 0.5  # every stochastic-depth number of the paper's tables uses linear decay to 0.5


@dataclass(frozen=True)
class PaperResult:
    """One number of the paper: test error (%) of one trained setting."""

    dataset: str
    depth: int
    survival: str  # "none" (constant depth) or "linear" (Eq. 4 with p_L = PAPER_P_LAST)
    augment: bool  # standard augmentation (pad-4 crop + flip): the paper's "+" data sets
    test_error: float
    source: str  # where in the paper
    note: str = ""  # printed under a table that shows this number
    arch: str = "cifar"  # the network family (sdnet.networks): He et al.'s CIFAR ResNets
    # The epoch the number is read at; None: the end of the paper's schedule. ImageNet has two
    # per rule: after 90 epochs and after 30 more at lr 1e-4 (one 120-epoch run gives both).
    epochs: int | None = None

    @property
    def p_last(self) -> float | None:
        return None if self.survival == "none" else PAPER_P_LAST


PAPER_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("cifar10", 110, "none", True, 6.41, "Table 1, CIFAR-10+"),
    PaperResult("cifar10", 110, "linear", True, 5.25, "Table 1, CIFAR-10+"),
    PaperResult("cifar100", 110, "none", True, 27.22, "Sec. 4 text, CIFAR-100",
                note="the paper's text gives 27.22; one copy of its Table 1 shows 27.76"),
    PaperResult("cifar100", 110, "linear", True, 24.98, "Table 1, CIFAR-100+"),
    PaperResult("svhn", 152, "none", False, 1.80, "Table 1, SVHN (ResNet-152, 50 epochs)"),
    PaperResult("svhn", 152, "linear", False, 1.75, "Table 1, SVHN (ResNet-152, 50 epochs)"),
    PaperResult("cifar10", 1202, "none", True, 6.67, "Sec. 4 text, 1202-layer ResNet"),
    PaperResult("cifar10", 1202, "linear", True, 4.91, "Sec. 4 text, 1202-layer ResNet"),
    PaperResult("cifar10", 110, "none", False, 13.63, "Sec. 4 text, CIFAR-10 without augmentation"),
    PaperResult("cifar10", 110, "linear", False, 11.66,
                "Sec. 4 text, CIFAR-10 without augmentation"),
    PaperResult("cifar100", 110, "none", False, 44.74,
                "Sec. 4 text, CIFAR-100 without augmentation"),
    PaperResult("cifar100", 110, "linear", False, 37.8,
                "Sec. 4 text, CIFAR-100 without augmentation"),
    # ImageNet, top-1 error: the ImageNet ResNet-152 with fb.resnet.torch's recipe. The run's
    # end (120 epochs) first: what `paper_result` gives without `epochs`.
    PaperResult("imagenet", 152, "none", True, 21.78,
                "Sec. 4, ImageNet (ResNet-152, 90 + 30 epochs, top-1)", arch="imagenet",
                epochs=120, note="ImageNet, top-1 after 120 epochs; after 90: 23.06 constant "
                "depth, 23.38 stochastic depth"),
    PaperResult("imagenet", 152, "linear", True, 21.98,
                "Sec. 4, ImageNet (ResNet-152, 90 + 30 epochs, top-1)", arch="imagenet",
                epochs=120, note="ImageNet, top-1 after 120 epochs; after 90: 23.06 constant "
                "depth, 23.38 stochastic depth"),
    PaperResult("imagenet", 152, "none", True, 23.06,
                "Table 1, ImageNet (ResNet-152, 90 epochs, top-1)", arch="imagenet", epochs=90),
    PaperResult("imagenet", 152, "linear", True, 23.38,
                "Table 1, ImageNet (ResNet-152, 90 epochs, top-1)", arch="imagenet", epochs=90),
)


def paper_result(dataset: str, depth: int, survival: str, p_last: float,
                 augment: bool = True, arch: str | None = None, epochs: int | None = None
                 ) -> PaperResult | None:
    """The paper's entry for this setting, or None. `epochs`: the number read at that epoch
    (ImageNet's 90); None: at the end of the paper's schedule.

    p_L must be the paper's unless the depth is constant; the paper's networks are the basic-block
    CIFAR ResNets (its ResNet-152 for SVHN too), so another family matches nothing. `arch`
    None is the depth's own family (`sdnet.networks.default_arch`).
    """
    family = networks.default_arch(int(depth)) if arch is None else arch
    for entry in PAPER_RESULTS:
        if (entry.dataset, entry.depth, entry.arch, entry.survival, entry.augment) != \
                (dataset, int(depth), family, survival, bool(augment)):
            continue
        if epochs is not None and entry.epochs not in (None, int(epochs)):
            continue
        if entry.p_last is None or math.isclose(float(p_last), entry.p_last):
            return entry
    return None


def paper_test_error(dataset: str, depth: int, survival: str, p_last: float,
                     augment: bool = True, arch: str | None = None) -> float | None:
    """The paper's test error (%) for this setting, or None (see paper_result)."""
    entry = paper_result(dataset, depth, survival, p_last, augment, arch)
    return None if entry is None else entry.test_error
