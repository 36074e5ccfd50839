"""CIFAR-10 and CIFAR-100 python archives: Python 2 pickles of (N, 3072) uint8 rows.

cifar-10-python.tar.gz: `cifar-10-batches-py/data_batch_1..5`, `test_batch` (`labels`) and
`batches.meta` (`label_names`). cifar-100-python.tar.gz: `cifar-100-python/train`, `test`
(`fine_labels`, `coarse_labels`) and `meta` (`fine_label_names`, `coarse_label_names`); sdnet
trains on the 100 fine labels. Both hold out a seeded validation subset of the training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdnet.data.archive import as_uint8, iter_files, load_pickle
from sdnet.data.common import CIFAR100_CLASSES, CLASSES
from sdnet.data.prepared import Split, check_split
from sdnet.errors import SdnetError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR100_DIR = "cifar-100-python"


def batch_split(data: bytes, name: str, label_key: str = "labels",
                num_classes: int = 10) -> Split:
    """(images NHWC, labels) of one pickled batch; SdnetError naming `name` when malformed."""
    batch = load_pickle(data, name)
    if "data" not in batch or label_key not in batch:
        raise SdnetError(f"{name}: no 'data'/{label_key!r} entries; is this a CIFAR batch?")
    pixels = as_uint8(batch["data"], name, "data")
    if pixels.ndim != 2 or pixels.shape[1] != 3072:
        raise SdnetError(f"{name}: 'data' must be (N, 3072), got {pixels.shape}")
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    check_split(images, labels, name, num_classes)
    return np.ascontiguousarray(images), labels


def _members(archive: Path, folder: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The wanted members `folder/<name>` of a CIFAR archive by name; one line naming the
    archive and what is missing."""
    wanted = {f"{folder}/{n}" for n in names}
    files = {name.removeprefix("./"): data for name, data in
             iter_files(archive, lambda name: name.removeprefix("./") in wanted)}
    missing = sorted(wanted - set(files))
    if missing:
        expected = "cifar-10-python.tar.gz" if folder == CIFAR10_DIR else "cifar-100-python.tar.gz"
        raise SdnetError(f"{archive}: missing {', '.join(missing)}; is it {expected}?")
    return {name: files[f"{folder}/{name}"] for name in names}


def _check_names(meta: bytes, source: str, key: str, expected: tuple[str, ...]) -> None:
    names = load_pickle(meta, source).get(key)
    if list(names or []) != list(expected):
        shown = list(names or [])[:5]
        raise SdnetError(f"{source}: {key} {shown}... are not the expected {len(expected)} "
                         f"classes {list(expected[:5])}...")


def read_cifar10(archive: Path) -> tuple[Split, Split]:
    """(train, test) of a cifar-10-python.tar.gz, batches in order 1..5."""
    files = _members(archive, CIFAR10_DIR, (*CIFAR10_TRAIN, "test_batch", "batches.meta"))
    _check_names(files["batches.meta"], f"{archive}:{CIFAR10_DIR}/batches.meta", "label_names",
                 CLASSES)
    parts = [batch_split(files[n], f"{archive}:{CIFAR10_DIR}/{n}") for n in CIFAR10_TRAIN]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return train, batch_split(files["test_batch"], f"{archive}:{CIFAR10_DIR}/test_batch")


def read_cifar100(archive: Path) -> tuple[Split, Split]:
    """(train, test) of a cifar-100-python.tar.gz with the 100 fine labels."""
    files = _members(archive, CIFAR100_DIR, ("train", "test", "meta"))
    _check_names(files["meta"], f"{archive}:{CIFAR100_DIR}/meta", "fine_label_names",
                 CIFAR100_CLASSES)
    train, test = (batch_split(files[n], f"{archive}:{CIFAR100_DIR}/{n}", "fine_labels", 100)
                   for n in ("train", "test"))
    return train, test


def split_off_val(train: Split, val_size: int, split_seed: int) -> tuple[Split, Split | None]:
    """Hold out `val_size` training images chosen by a generator seeded with `split_seed`."""
    images, labels = train
    if not 0 <= val_size < len(labels):
        raise SdnetError(f"val_size must be in 0..{len(labels) - 1} for {len(labels)} training "
                         f"images, got {val_size}")
    if val_size == 0:
        return train, None
    perm = np.random.default_rng(split_seed).permutation(len(labels))
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def prepare_splits(dataset: str, archive: Path, val_size: int | None,
                   split_seed: int) -> dict[str, Split]:
    """train/val/test of a CIFAR-10 or CIFAR-100 archive; val is 10 % of the training images
    by default (5000 of the real 50,000: the paper's 45k/5k split)."""
    train, test = (read_cifar10 if dataset == "cifar10" else read_cifar100)(archive)
    val_size = len(train[1]) // 10 if val_size is None else val_size
    train, val = split_off_val(train, val_size, split_seed)
    splits = {"train": train, "val": val, "test": test}
    return {k: v for k, v in splits.items() if v is not None}
