"""The prepared folder: train/val/test .npz arrays plus meta.json, written and read here only."""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdnet.data.common import FORMAT_VERSION, require_file
from sdnet.data.registry import Dataset, Split, get_dataset
from sdnet.errors import SdnetError

SPLITS = ("train", "val", "test")
PREPARE_HINT = "run `sdnet data prepare` first"
STATS_CHUNK = 4096  # images per histogram pass: bincount widens to int64, 8 B per value
# What np.load raises on a truncated or damaged .npz (zip) or .npy member.
_UNREADABLE = (zipfile.BadZipFile, EOFError, ValueError, zlib.error, KeyError, OSError)


@dataclass
class Prepared:
    """A prepared data set in host memory: (images uint8 NHWC RGB, labels int64) per split."""

    train: Split
    val: Split | None
    test: Split
    meta: dict

    @property
    def mean(self) -> list[float]:
        return list(self.meta["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.meta["std"])

    def normalization(self, kind: str) -> tuple[Any, Any]:
        """(mean, std) for the loader on the 0-1 scale: "channel" = meta.json's per-channel
        figures; "pixel" = the original's `preprocess` (cifar-dataset.lua:47-52): the training
        split's mean image (3, H, W) and one scalar std, computed here at load (meta.json, and so
        every run's fingerprint, stays as it was)."""
        if kind == "channel":
            return self.mean, self.std
        if kind == "pixel":
            if not isinstance(self.train[0], np.ndarray):  # ImageNet's JPEG store
                raise SdnetError(f"--normalize pixel needs the training images as arrays; "
                                 f"{self.meta.get('dataset')}'s are JPEG files: use "
                                 "--normalize channel (its recipe's)")
            return mean_image(self.train[0]), scalar_std(self.mean, self.std,
                                                         self.train[0].size)
        raise SdnetError(f"unknown normalisation {kind!r}; choose pixel or channel")


def check_split(images: np.ndarray, labels: np.ndarray, source: Path | str,
                num_classes: int = 10, image_size: int = 32) -> None:
    """Raise SdnetError naming `source` unless the arrays are a valid RGB split of
    image_size x image_size images with labels in 0..num_classes-1."""
    shape = (image_size, image_size, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape:
        raise SdnetError(f"{source}: images must be uint8 (N, {image_size}, {image_size}, 3), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise SdnetError(f"{source}: {images.shape[0]} images but labels of shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise SdnetError(f"{source}: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise SdnetError(f"{source}: labels must be in 0..{num_classes - 1}, got "
                         f"{labels.min()}..{labels.max()}")


def write_split(path: Path, images: np.ndarray, labels: np.ndarray,
                num_classes: int = 10, image_size: int = 32) -> None:
    """Uncompressed .npz (fast to load) with fixed zip timestamps, so equal data = equal bytes.

    np.savez stamps each member with the current time; this writes the same format by hand.
    """
    check_split(images, labels, path, num_classes, image_size)
    arrays = {"images": np.ascontiguousarray(images), "labels": labels.astype(np.int64)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0-1 scale, exact: from 256-bin histograms of the uint8
    pixels (ten times faster than float arithmetic over the 45k x 3072 values), counted a
    chunk of images at a time so that the temporary copy stays small."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(images.shape[-1]):
        hist = np.zeros(256, np.float64)
        for start in range(0, len(images), STATS_CHUNK):
            chunk = images[start:start + STATS_CHUNK, ..., c]
            hist += np.bincount(chunk.ravel(), minlength=256)
        mean = (hist @ values) / hist.sum()
        var = (hist @ np.square(values - mean)) / hist.sum()
        means.append(round(float(mean) / 255.0, 8))
        stds.append(round(float(np.sqrt(var)) / 255.0, 8))
    return means, stds


def mean_image(images: np.ndarray) -> np.ndarray:
    """The per-pixel mean (3, H, W) on the 0-1 scale of uint8 (N, H, W, 3) images (Torch's
    `data:mean(1)`), summed exactly in int64 a chunk at a time."""
    total = np.zeros(images.shape[1:], np.int64)
    for start in range(0, len(images), STATS_CHUNK):
        total += images[start:start + STATS_CHUNK].sum(axis=0, dtype=np.int64)
    mean = total / (255.0 * max(len(images), 1))
    return np.ascontiguousarray(mean.transpose(2, 0, 1), dtype=np.float32)


def scalar_std(means: Sequence[float], stds: Sequence[float], count: int) -> float:
    """One std over every value of the split, all channels (Torch's `data:std()`, unbiased), from
    the per-channel means and (population) stds of meta.json: each channel holds count / C of the
    values, so the pooled second moment is their mean. No second pass over the pixels."""
    m, s = np.asarray(means, np.float64), np.asarray(stds, np.float64)
    variance = float(np.mean(s * s + m * m) - np.mean(m) ** 2)
    return float(np.sqrt(variance * count / max(count - 1, 1)))


def build_meta(dataset: str | Dataset, splits: dict[str, Split],
               source_md5: str | dict[str, str], val_size: int, split_seed: int, *,
               classes: Sequence[str] | None = None, **shape: object) -> dict:
    """meta.json content as docs/DESIGN.md fixes it. `source_md5` is the archive's md5, or
    {file: md5} for a data set of several files; `classes`: the names in label order (default:
    the data set's own); `shape` holds the data set's own settings that shape the arrays (SVHN:
    use_extra, val_per_class), so that they enter the fingerprint."""
    dataset = get_dataset(dataset) if isinstance(dataset, str) else dataset
    classes = list(dataset.classes if classes is None else classes)
    mean, std = channel_stats(splits["train"][0])
    return {
        "dataset": dataset.name,
        "classes": classes,
        "num_classes": len(classes),
        "image_size": dataset.image_size,
        "counts": {name: len(split[1]) for name, split in splits.items()},
        "mean": mean,
        "std": std,
        "source_md5": source_md5,
        "val_size": int(val_size),
        "split_seed": int(split_seed),
        **shape,
        "format_version": FORMAT_VERSION,
    }


def write_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def _read_split(path: Path, num_classes: int, image_size: int) -> Split:
    require_file(path, PREPARE_HINT)
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except _UNREADABLE as err:
        raise SdnetError(
            f"{path}: unreadable or truncated prepared array ({type(err).__name__}: {err}); "
            f"re-run `sdnet data prepare` (under Snakemake: delete {path.parent} so that "
            "prepare_dataset runs again)") from err
    check_split(images, labels, path, num_classes, image_size)
    return images, labels


def _read_meta(data_dir: Path) -> dict:
    path = require_file(data_dir / "meta.json", PREPARE_HINT)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SdnetError(f"{path}: invalid JSON ({err}); {PREPARE_HINT} again") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise SdnetError(f"{path}: format_version {meta.get('format_version')!r}, expected "
                         f"{FORMAT_VERSION}; {PREPARE_HINT} again")
    return meta


def _image_size(path: Path, meta: dict) -> int:
    """The data set's image size; a meta.json that says otherwise is refused. (Folders prepared
    before meta.json recorded it hold the data set's size.)"""
    try:
        expected = get_dataset(meta.get("dataset")).image_size
    except SdnetError as err:
        raise SdnetError(f"{path}: {err}") from None
    if meta.get("image_size", expected) != expected:
        raise SdnetError(f"{path}: image_size {meta['image_size']!r}, but "
                         f"{meta['dataset']} images are {expected}x{expected}; {PREPARE_HINT} "
                         "again")
    return expected


def load_prepared(data_dir: Path | str) -> Prepared:
    """Read a folder written by `prepare`; SdnetError saying what is missing and what to run."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SdnetError(f"data folder {data_dir} not found; {PREPARE_HINT}")
    meta = _read_meta(data_dir)
    num_classes = len(meta.get("classes") or ())
    image_size = _image_size(data_dir / "meta.json", meta)
    jpeg_train = meta.get("train_format") == "jpeg"  # ImageNet: sdnet.data.jpegs
    splits = {name: _read_split(data_dir / f"{name}.npz", num_classes, image_size)
              for name in SPLITS if name in meta.get("counts", {})
              and not (jpeg_train and name == "train")}
    if jpeg_train and "train" in meta.get("counts", {}):
        from sdnet.data.jpegs import read_jpeg_split

        splits["train"] = read_jpeg_split(data_dir, image_size, num_classes,
                                          meta["counts"]["train"])
    for name in ("train", "test"):
        if name not in splits:
            raise SdnetError(f"{data_dir / 'meta.json'}: no {name!r} split listed; {PREPARE_HINT}")
    for name, (_, labels) in splits.items():
        if len(labels) != meta["counts"][name]:
            raise SdnetError(f"{data_dir / (name + '.npz')}: {len(labels)} images but meta.json "
                             f"says {meta['counts'][name]}; {PREPARE_HINT} again")
    return Prepared(train=splits["train"], val=splits.get("val"), test=splits["test"], meta=meta)
