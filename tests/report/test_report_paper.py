"""sdnet.report.paper: the paper's numbers, each with its source, matched by what a run trained."""

from __future__ import annotations

import pytest

from sdnet import report
from sdnet.report import paper

# REFERENCE.md's numbers: (data set, depth, augmented) -> (constant depth, linear decay p_L 0.5)
REFERENCE = {
    ("cifar10", 110, True): (6.41, 5.25),
    ("cifar100", 110, True): (27.22, 24.98),
    ("svhn", 152, False): (1.80, 1.75),
    ("cifar10", 1202, True): (6.67, 4.91),
    ("cifar10", 110, False): (13.63, 11.66),
    ("cifar100", 110, False): (44.74, 37.8),
}


@pytest.mark.parametrize("key, values", REFERENCE.items())
def test_every_paper_number_by_rule_p_last_and_augmentation(key, values) -> None:
    dataset, depth, augment = key
    assert report.paper_test_error(dataset, depth, "none", 1.0, augment) == values[0]
    assert report.paper_test_error(dataset, depth, "none", 0.2, augment) == values[0]
    assert report.paper_test_error(dataset, depth, "linear", 0.5, augment) == values[1]
    assert report.paper_test_error(dataset, depth, "linear", 0.3, augment) is None
    assert report.paper_test_error(dataset, depth, "uniform", 0.5, augment) is None
    assert report.paper_test_error(dataset, depth, "none", 1.0, not augment) != values[0]


def test_the_table_holds_exactly_these_numbers_each_with_a_source() -> None:
    cifar = [r for r in paper.PAPER_RESULTS if r.arch == "cifar"]  # ImageNet's: own test file
    found = {(r.dataset, r.depth, r.augment, r.survival): r.test_error for r in cifar}
    expected = {(*k, rule): v[i] for k, v in REFERENCE.items()
                for i, rule in enumerate(("none", "linear"))}
    assert found == expected and len(cifar) == len(expected)
    assert all(r.source for r in paper.PAPER_RESULTS)


def test_cifar100_constant_depth_notes_the_other_copy_of_table_1() -> None:
    entry = report.paper_result("cifar100", 110, "none", 1.0, True)
    assert entry.test_error == 27.22 and "27.76" in entry.note and "text" in entry.note
    assert not report.paper_result("cifar100", 110, "linear", 0.5, True).note


def test_no_match_for_other_data_sets_depths_or_families() -> None:
    assert report.paper_test_error("cinic10", 110, "linear", 0.5) is None
    assert report.paper_test_error("cifar10", 56, "none", 1.0) is None
    assert report.paper_test_error("svhn", 152, "none", 1.0, False, arch="bottleneck") is None
    assert report.paper_test_error("svhn", 152, "none", 1.0, False, arch="cifar") == 1.80


def test_the_paper_trained_the_cifar_family_only() -> None:
    """A pre-activation or bottleneck network of a depth the paper reports gets no number."""
    assert report.paper_test_error("cifar10", 110, "none", 1.0, True, arch="cifar") == 6.41
    assert report.paper_test_error("cifar10", 110, "none", 1.0, True) == 6.41  # its own family
    for arch in ("preact", "preact-bottleneck"):
        assert report.paper_test_error("cifar10", 110, "none", 1.0, True, arch=arch) is None
    assert report.paper_test_error("cifar10", 1202, "linear", 0.5, True, arch="preact") is None
    assert {entry.arch for entry in report.PAPER_RESULTS} == {"cifar", "imagenet"}
