"""Shared fixtures: fake CIFAR-10 / CINIC-10 archives and folders prepared from them.

The prepared folders go through the real path (download from a file:// URL with its md5, then
prepare), so every test that trains or reports on them also exercises the data pipeline.
Non-pytest code can call `sdnet.data.fake_prepared` (or `prepared_fake` below) directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnet.data import fake_prepared, make_fake

FAKE_SEED = 0


def prepared_fake(dataset: str, root: Path, per_class: int | None = None,
                  val_size: int | None = None) -> Path:
    """A prepared folder of a small fake `dataset` under `root` (see sdnet.data.fake_prepared)."""
    return fake_prepared(dataset, root, per_class=per_class, seed=FAKE_SEED, val_size=val_size)


@pytest.fixture(scope="session")
def cifar10_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fake cifar-10-python.tar.gz (600 train + 200 test images)."""
    return make_fake("cifar10", tmp_path_factory.mktemp("fake_cifar10"), seed=FAKE_SEED)


@pytest.fixture(scope="session")
def cinic10_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fake CINIC-10.tar.gz (200 images per split, some greyscale/palette PNGs)."""
    return make_fake("cinic10", tmp_path_factory.mktemp("fake_cinic10"), seed=FAKE_SEED)


@pytest.fixture(scope="session")
def prepared_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared fake CIFAR-10: train 540, val 60, test 200 (see meta.json)."""
    return prepared_fake("cifar10", tmp_path_factory.mktemp("prepared_cifar10"))


@pytest.fixture(scope="session")
def prepared_cinic10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared fake CINIC-10: train, val and test of 200 images each."""
    return prepared_fake("cinic10", tmp_path_factory.mktemp("prepared_cinic10"))
