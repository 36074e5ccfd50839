"""SVHN (cropped digits): three MATLAB v5 files, read with scipy.io, one at a time.

Each file holds `X` uint8 (32, 32, 3, N) and `y` (N, 1) with digit 0 stored as 10 (torchvision's
SVHN reads them the same way). As in the paper's code, training uses train + extra less a
validation set of `val_per_class` images of every digit from each (400 + 200 per digit: 6,000);
the test set is test. The prepared training arrays are 1.9 GB, so they are preallocated from the
files' headers (scipy.io.whosmat) and each file is copied in and freed before the next is read:
the peak is about one input file plus the output (benchmarks/bench_prepare.py measures it).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError, matfile_version

from sdnet.data.common import IMAGE_SHAPE
from sdnet.data.prepared import Split
from sdnet.errors import SdnetError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
DEFAULT_VAL_PER_CLASS = {"train": 400, "extra": 200}
NUM_CLASSES = 10
GATHER_CHUNK = 8192  # images per copy step (25 MB of temporary)
# What scipy.io raises on a damaged file (a truncated zlib stream, a bad tag, a cut header).
_UNREADABLE = (MatReadError, ValueError, TypeError, KeyError, IndexError, OSError, EOFError,
               zlib.error, NotImplementedError)


def val_per_class_settings(use_extra: bool, val_per_class: Mapping[str, int] | None
                           ) -> dict[str, int]:
    """The validation images per digit taken from each training file in use (defaults: the
    paper's 400 from train, 200 from extra); SdnetError for an unknown key or a negative count."""
    given = dict(val_per_class or {})
    unknown = sorted(set(given) - set(DEFAULT_VAL_PER_CLASS))
    if unknown:
        raise SdnetError(f"val_per_class: unknown key {unknown[0]!r}; the keys are train, extra")
    settings = {**DEFAULT_VAL_PER_CLASS, **given}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise SdnetError(f"val_per_class {key} must be an integer >= 0, got {value!r}")
    return {k: int(v) for k, v in settings.items() if k == "train" or use_extra}


def _check_version(path: Path) -> None:
    """One line for anything but a MATLAB v5 file: a v7.3 (HDF5) file, a v4 file, no .mat."""
    try:
        with open(path, "rb") as fh:
            major, _ = matfile_version(fh)
    except (MatReadError, ValueError, OSError, EOFError) as err:
        raise SdnetError(f"{path}: not a MATLAB .mat file ({err})") from err
    if major == 2:
        raise SdnetError(f"{path}: a MATLAB v7.3 (HDF5) file; sdnet reads MATLAB v5 files "
                         "like the official SVHN ones (scipy.io)")
    if major != 1:
        raise SdnetError(f"{path}: not a MATLAB v5 file (it reads as v4); is it an SVHN "
                         "*_32x32.mat file?")


def mat_count(path: Path) -> int:
    """The number of images in an SVHN .mat file, from its headers only (nothing is loaded);
    SdnetError naming the file when it is no v5 file, lacks X or y, or their lengths differ."""
    _check_version(path)
    try:
        variables = {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except _UNREADABLE as err:
        raise SdnetError(f"{path}: unreadable MATLAB file ({err})") from err
    missing = [k for k in ("X", "y") if k not in variables]
    if missing:
        raise SdnetError(f"{path}: no {' or '.join(repr(k) for k in missing)} variable (found "
                         f"{sorted(variables) or 'none'}); is it a complete (not truncated) SVHN "
                         "*_32x32.mat file?")
    x_shape, y_shape = variables["X"], variables["y"]
    if len(x_shape) != 4 or x_shape[:3] != IMAGE_SHAPE:
        raise SdnetError(f"{path}: X must be (32, 32, 3, N), got {x_shape}")
    count = x_shape[3]
    if y_shape not in ((count, 1), (1, count)):
        raise SdnetError(f"{path}: X holds {count} images but y has shape {y_shape}: "
                         "mismatched lengths")
    return count


def read_mat(path: Path, count: int) -> Split:
    """(images (N, 32, 32, 3) -- a view of the file's X --, labels 0..9) of one SVHN file."""
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except _UNREADABLE as err:
        raise SdnetError(f"{path}: unreadable MATLAB file ({err})") from err
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    del mat
    if x.dtype != np.uint8 or x.shape != (*IMAGE_SHAPE, count):
        raise SdnetError(f"{path}: X must be uint8 (32, 32, 3, {count}), got {x.dtype} {x.shape}")
    if len(y) != count:
        raise SdnetError(f"{path}: X holds {count} images but y {len(y)} labels")
    if not np.issubdtype(y.dtype, np.integer) and not np.array_equal(y, np.round(y)):
        raise SdnetError(f"{path}: y must hold whole digits, got {y.dtype} values")
    labels = y.astype(np.int64)
    if count and (labels.min() < 1 or labels.max() > 10):
        raise SdnetError(f"{path}: y must hold digits 1..10 (10 = digit 0), got "
                         f"{labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    return x.transpose(3, 0, 1, 2), labels


def _val_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator,
                 path: Path, key: str) -> np.ndarray:
    """Sorted indices of `per_class` images of every digit, drawn by `rng`."""
    chosen = []
    for digit in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == digit)
        if len(idx) < per_class:
            raise SdnetError(f"val_per_class {key} = {per_class} is more than the {len(idx)} "
                             f"images of digit {digit} in {path}")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _gather(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, out: Split,
            start: int) -> int:
    """Copy images[idx] into out[start:], GATHER_CHUNK images at a time; return the next start.
    (np.take would first copy the whole strided view of the file's X: 1.6 GB for extra.)"""
    for i in range(0, len(idx), GATHER_CHUNK):
        part = idx[i:i + GATHER_CHUNK]
        out[0][start + i:start + i + len(part)] = images[part]
    out[1][start:start + len(idx)] = labels[idx]
    return start + len(idx)


def _empty(count: int) -> Split:
    return np.empty((count, *IMAGE_SHAPE), np.uint8), np.empty(count, np.int64)


def prepare_splits(folder: Path, use_extra: bool, val_per_class: Mapping[str, int],
                   split_seed: int) -> dict[str, Split]:
    """train/val/test of the SVHN files in `folder` (extra only when `use_extra`); the
    validation images of each digit are drawn, file by file, by a generator seeded with
    `split_seed`. Files are read one at a time into preallocated outputs."""
    sources = ["train", "extra"] if use_extra else ["train"]
    paths = {key: folder / FILES[key] for key in [*sources, "test"]}
    for key, path in paths.items():
        if not path.is_file():
            raise SdnetError(f"{path} not found; run `sdnet data download --dataset svhn "
                             f"--file {FILES[key]}` first")
    counts = {key: mat_count(path) for key, path in paths.items()}
    for key in sources:  # so that each file fills exactly its share of the outputs
        if NUM_CLASSES * val_per_class[key] > counts[key]:
            raise SdnetError(f"val_per_class {key} = {val_per_class[key]} needs "
                             f"{NUM_CLASSES * val_per_class[key]} images, more than the "
                             f"{counts[key]} in {paths[key]}")
    val_count = NUM_CLASSES * sum(val_per_class[key] for key in sources)
    train_count = sum(counts[key] for key in sources) - val_count
    if train_count < 1:
        raise SdnetError(f"val_per_class {dict(val_per_class)} leaves no training images "
                         f"({', '.join(f'{k}: {counts[k]}' for k in sources)})")
    train, val = _empty(train_count), _empty(val_count)
    rng = np.random.default_rng(split_seed)
    at_train = at_val = 0
    for key in sources:
        images, labels = read_mat(paths[key], counts[key])
        val_idx = _val_indices(labels, val_per_class[key], rng, paths[key], key)
        keep = np.ones(len(labels), bool)
        keep[val_idx] = False
        at_train = _gather(images, labels, np.flatnonzero(keep), train, at_train)
        at_val = _gather(images, labels, val_idx, val, at_val)
        del images, labels, keep  # free this file before the next one is read
    images, labels = read_mat(paths["test"], counts["test"])
    splits = {"train": train, "val": val, "test": (np.ascontiguousarray(images), labels)}
    return {k: v for k, v in splits.items() if k != "val" or len(v[1])}
