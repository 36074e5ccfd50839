"""Archive -> train/val/test .npz + meta.json, written atomically into a prepared folder.

The archive is extracted (tarfile "data" filter) into a temporary folder beside the output;
arrays and meta.json (last) go into a second temporary folder that is renamed into place only
when complete, so an interrupted prepare leaves nothing that looks finished. Same inputs, same
bytes: files are read in sorted order and the split comes from its own seeded generator.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdnet.data.archive import as_uint8, extract, load_pickle
from sdnet.data.common import CLASSES, dataset_info
from sdnet.data.download import md5_of
from sdnet.data.prepared import Split, build_meta, check_split, write_meta, write_split
from sdnet.errors import SdnetError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CINIC_SPLITS = {"train": "train", "val": "valid", "test": "test"}
DECODE_CHUNK = 2000
MIN_POOL_IMAGES = 4000  # below this a process pool costs more than it saves
PREPARED_NAMES = {"train.npz", "val.npz", "test.npz", "meta.json"}


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- CIFAR-10 -------------------------------------------------------------------------------

def _cifar_batch(path: Path) -> Split:
    batch = load_pickle(path)
    if "data" not in batch or "labels" not in batch:
        raise SdnetError(f"{path}: no 'data'/'labels' entries; is this a CIFAR-10 batch?")
    data = as_uint8(batch["data"], path, "data")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise SdnetError(f"{path}: 'data' must be (N, 3072), got {data.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    check_split(images, labels, path)
    return np.ascontiguousarray(images), labels


def _check_cifar_classes(root: Path) -> None:
    names = load_pickle(root / "batches.meta").get("label_names")
    if list(names or []) != list(CLASSES):
        raise SdnetError(f"{root / 'batches.meta'}: label_names {names} are not CIFAR-10's "
                         f"{list(CLASSES)}")


def read_cifar10(root: Path) -> tuple[Split, Split]:
    """(train, test) from an extracted archive."""
    folder = root / CIFAR_DIR
    if not folder.is_dir():
        raise SdnetError(f"archive has no {CIFAR_DIR}/ folder; is it cifar-10-python.tar.gz?")
    _check_cifar_classes(folder)
    parts = [_cifar_batch(folder / name) for name in CIFAR_TRAIN]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return train, _cifar_batch(folder / "test_batch")


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


def _prepare_cifar10(root: Path, val_size: int | None, split_seed: int,
                     workers: int) -> tuple[dict[str, Split], int]:
    train, test = read_cifar10(root)
    # 10 % of the training set: 5000 of 50,000 for the real data (the paper's 45k/5k split).
    val_size = len(train[1]) // 10 if val_size is None else val_size
    train, val = split_off_val(train, val_size, split_seed)
    splits = {"train": train, "val": val, "test": test}
    return {k: v for k, v in splits.items() if v is not None}, val_size


# --- CINIC-10 -------------------------------------------------------------------------------

def decode_pngs(paths: list[str]) -> np.ndarray:
    """uint8 (N, 32, 32, 3) RGB; greyscale and palette images are converted (worker function)."""
    out = np.empty((len(paths), 32, 32, 3), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                if im.size != (32, 32):
                    raise SdnetError(f"{path}: image is {im.size[0]}x{im.size[1]}, not 32x32")
                out[i] = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise SdnetError(f"{path}: not a readable PNG ({err})") from err
    return out


def _find_cinic_root(root: Path) -> Path:
    """The folder holding train/ valid/ test/ (the archive's top level or one folder down)."""
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for folder in candidates:
        if all((folder / name).is_dir() for name in CINIC_SPLITS.values()):
            return folder
    raise SdnetError("archive has no train/, valid/ and test/ folders; is it CINIC-10.tar.gz?")


def _list_cinic_split(folder: Path) -> tuple[list[str], np.ndarray]:
    """Sorted PNG paths of one split and their labels in CIFAR-10's class order."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if found != sorted(CLASSES):
        raise SdnetError(f"{folder}: class folders {found}, expected the 10 CIFAR-10 classes "
                         f"{sorted(CLASSES)}")
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(CLASSES):
        files = sorted(e.path for e in os.scandir(folder / name)
                       if e.is_file() and e.name.lower().endswith(".png"))
        if not files:
            raise SdnetError(f"{folder / name}: no PNG files")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


@contextmanager
def _decoder(workers: int, n_images: int) -> Iterator:
    """`map`-like callable: a process pool when worth it, else the plain builtin."""
    if workers <= 1 or n_images < MIN_POOL_IMAGES:
        yield map
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield pool.map


def _decode_all(paths: list[str], mapper: Callable) -> np.ndarray:
    chunks = [paths[i:i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    parts = list(mapper(decode_pngs, chunks))
    return np.concatenate(parts) if parts else np.empty((0, 32, 32, 3), np.uint8)


def _prepare_cinic10(root: Path, val_size: int | None, split_seed: int,
                     workers: int) -> tuple[dict[str, Split], int]:
    base = _find_cinic_root(root)
    wanted = {k: v for k, v in CINIC_SPLITS.items() if not (k == "val" and val_size == 0)}
    listed = {k: _list_cinic_split(base / v) for k, v in wanted.items()}
    total = sum(len(labels) for _, labels in listed.values())
    splits: dict[str, Split] = {}
    with _decoder(workers, total) as mapper:
        for key, (paths, labels) in listed.items():
            splits[key] = _decode_all(paths, mapper), labels
    if "val" in splits and val_size is not None:
        splits["val"] = _subsample(splits["val"], val_size, split_seed)
    return splits, len(splits["val"][1]) if "val" in splits else 0


def _subsample(split: Split, size: int, seed: int) -> Split:
    """A seeded subset of CINIC-10's shipped valid split (a smaller, faster validation set)."""
    images, labels = split
    if size > len(labels):
        raise SdnetError(f"val_size {size} exceeds the {len(labels)} images of CINIC-10's "
                         "valid split")
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:size])
    return images[idx], labels[idx]


# --- Output folder --------------------------------------------------------------------------

def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the finished folder into place, replacing an earlier prepared folder."""
    if out_dir.exists():
        extra = {p.name for p in out_dir.iterdir()} - PREPARED_NAMES
        if extra:
            raise SdnetError(f"{out_dir} holds files prepare did not write ({sorted(extra)[:3]}); "
                             "refusing to replace it: choose an empty or new --out")
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def _write_prepared(folder: Path, splits: dict[str, Split], meta: dict) -> None:
    for name, (images, labels) in splits.items():
        write_split(folder / f"{name}.npz", images, labels)
    write_meta(folder / "meta.json", meta)  # last: its presence means the folder is complete


_READERS = {"cifar10": _prepare_cifar10, "cinic10": _prepare_cinic10}


def prepare(dataset: str, archive: Path | str, out_dir: Path | str, val_size: int | None = None,
            split_seed: int = 0, workers: int | None = None) -> dict:
    """Turn a downloaded archive into the prepared folder `out_dir`; return its meta dict."""
    dataset_info(dataset)
    archive, out_dir = Path(archive), Path(out_dir)
    if not archive.is_file():
        raise SdnetError(f"{archive} not found; run `sdnet data download` first")
    if val_size is not None and val_size < 0:
        raise SdnetError(f"val_size must be >= 0, got {val_size}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.extract-",
                                     dir=out_dir.parent) as extracted:
        extract(archive, Path(extracted))
        splits, val_count = _READERS[dataset](Path(extracted), val_size, split_seed,
                                              workers or default_workers())
    meta = build_meta(dataset, splits, md5_of(archive), val_count, split_seed)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the prepared folder is ordinary data
        _write_prepared(staging, splits, meta)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta
