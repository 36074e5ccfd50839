"""Archive -> train/val/test .npz + meta.json, written atomically into a prepared folder.

The archive is read as one stream, each member checked by tarfile's "data" filter and nothing
extracted to disk (writing 270,000 small CINIC-10 files costs minutes; see sdnet.data.archive);
CINIC-10 PNGs are decoded by a process pool while the stream is still being read. Arrays and
meta.json (last) go into a temporary folder beside the output that is renamed into place only
when complete, so an interrupted prepare leaves nothing that looks finished. Same inputs, same
bytes: images are ordered by class and file name, and the validation split comes from its own
seeded generator.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdnet.data.archive import as_uint8, iter_files, load_pickle
from sdnet.data.common import CLASSES, dataset_info, default_workers, process_pool
from sdnet.data.download import md5_of
from sdnet.data.prepared import Split, build_meta, check_split, write_meta, write_split
from sdnet.errors import SdnetError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CINIC_SPLITS = {"train": "train", "val": "valid", "test": "test"}
DECODE_CHUNK = 1000  # PNGs per task: small enough to overlap reading and decoding
PREPARED_NAMES = {"train.npz", "val.npz", "test.npz", "meta.json"}


# --- CIFAR-10 -------------------------------------------------------------------------------

def _cifar_batch(data: bytes, name: str) -> Split:
    batch = load_pickle(data, name)
    if "data" not in batch or "labels" not in batch:
        raise SdnetError(f"{name}: no 'data'/'labels' entries; is this a CIFAR-10 batch?")
    pixels = as_uint8(batch["data"], name, "data")
    if pixels.ndim != 2 or pixels.shape[1] != 3072:
        raise SdnetError(f"{name}: 'data' must be (N, 3072), got {pixels.shape}")
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    check_split(images, labels, name)
    return np.ascontiguousarray(images), labels


def read_cifar10(archive: Path) -> tuple[Split, Split]:
    """(train, test) of a cifar-10-python.tar.gz, batches in order 1..5."""
    wanted = {f"{CIFAR_DIR}/{n}" for n in (*CIFAR_TRAIN, "test_batch", "batches.meta")}
    files = dict(iter_files(archive, lambda name: name.removeprefix("./") in wanted))
    files = {name.removeprefix("./"): data for name, data in files.items()}
    missing = sorted(wanted - set(files))
    if missing:
        raise SdnetError(f"{archive}: missing {', '.join(missing)}; is it cifar-10-python.tar.gz?")
    meta_name = f"{archive}:{CIFAR_DIR}/batches.meta"
    names = load_pickle(files[f"{CIFAR_DIR}/batches.meta"], meta_name).get("label_names")
    if list(names or []) != list(CLASSES):
        raise SdnetError(f"{meta_name}: label_names {names} are not CIFAR-10's {list(CLASSES)}")
    parts = [_cifar_batch(files[f"{CIFAR_DIR}/{n}"], f"{archive}:{CIFAR_DIR}/{n}")
             for n in CIFAR_TRAIN]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test_name = f"{CIFAR_DIR}/test_batch"
    return train, _cifar_batch(files[test_name], f"{archive}:{test_name}")


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


def _prepare_cifar10(archive: Path, val_size: int | None, split_seed: int,
                     workers: int) -> dict[str, Split]:
    train, test = read_cifar10(archive)
    # 10 % of the training set: 5000 of 50,000 for the real data (the paper's 45k/5k split).
    val_size = len(train[1]) // 10 if val_size is None else val_size
    train, val = split_off_val(train, val_size, split_seed)
    splits = {"train": train, "val": val, "test": test}
    return {k: v for k, v in splits.items() if v is not None}


# --- CINIC-10 -------------------------------------------------------------------------------

Chunk = list[tuple[str, bytes]]


def decode_pngs(chunk: Chunk, source: str = "") -> np.ndarray:
    """uint8 (N, 32, 32, 3) RGB of (member name, PNG bytes) pairs of archive `source`;
    greyscale and palette images are converted to RGB (runs in the worker processes)."""
    out = np.empty((len(chunk), 32, 32, 3), np.uint8)
    for i, (name, data) in enumerate(chunk):
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                if im.size != (32, 32):
                    raise SdnetError(f"{source}:{name}: image is {im.size[0]}x{im.size[1]}, not 32x32")
                out[i] = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise SdnetError(f"{source}:{name}: not a readable PNG ({err})") from err
    return out


def _cinic_key(name: str) -> tuple[str, str, str] | None:
    """(split, class, file) of a .../<split>/<class>/<file>.png member, else None."""
    parts = name.split("/")
    if len(parts) < 3 or parts[-3] not in CINIC_SPLITS.values():
        return None
    return (parts[-3], parts[-2], parts[-1]) if parts[-1].lower().endswith(".png") else None


def _chunks(archive: Path, splits: set[str], size: int) -> Iterator[Chunk]:
    """PNG members of the wanted CINIC-10 splits, in archive order, `size` at a time."""
    def wanted(name: str) -> bool:
        key = _cinic_key(name)
        return key is not None and key[0] in splits

    chunk: Chunk = []
    for name, data in iter_files(archive, wanted):
        chunk.append((name, data))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def decode_stream(chunks: Iterator[Chunk], workers: int, source: str = ""
                  ) -> tuple[list[str], np.ndarray]:
    """Decode chunks while the archive is still being read: a process pool once a first full
    chunk shows the archive is big enough, at most 2 chunks per worker in flight."""
    names: list[str] = []
    parts: list[np.ndarray] = []
    pending: deque = deque()
    pool = None
    try:
        for chunk in chunks:
            names += [name for name, _ in chunk]
            if pool is None and workers > 1 and len(chunk) == DECODE_CHUNK:
                pool = process_pool(workers)
            if pool is None:
                parts.append(decode_pngs(chunk, source))
                continue
            pending.append(pool.submit(decode_pngs, chunk, source))
            while len(pending) > 2 * workers:
                parts.append(pending.popleft().result())
        parts += [future.result() for future in pending]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return names, np.concatenate(parts) if parts else np.empty((0, 32, 32, 3), np.uint8)


def _sorted_split(archive: Path, split: str, names: list[str], images: np.ndarray) -> Split:
    """One split's images in a fixed order: CIFAR-10 class order, then file name."""
    keys = [(i, _cinic_key(name)) for i, name in enumerate(names)]
    keys = [(i, k) for i, k in keys if k is not None and k[0] == split]
    found = sorted({k[1] for _, k in keys})
    if found != sorted(CLASSES):
        raise SdnetError(f"{archive}: {split}/ has class folders {found}, expected the 10 "
                         f"CIFAR-10 classes {sorted(CLASSES)}")
    order = sorted(keys, key=lambda ik: (CLASSES.index(ik[1][1]), ik[1][2]))
    files = [k for _, k in order]
    if len(set(files)) != len(files):
        raise SdnetError(f"{archive}: {split}/ lists some files twice")
    idx = np.array([i for i, _ in order])
    labels = np.array([CLASSES.index(k[1]) for _, k in order], dtype=np.int64)
    return images[idx], labels


def _prepare_cinic10(archive: Path, val_size: int | None, split_seed: int,
                     workers: int) -> dict[str, Split]:
    wanted = {k: v for k, v in CINIC_SPLITS.items() if not (k == "val" and val_size == 0)}
    chunks = _chunks(archive, set(wanted.values()), DECODE_CHUNK)
    names, images = decode_stream(chunks, workers, str(archive))
    if not names:
        raise SdnetError(f"{archive}: no train/, valid/, test/ PNG files; is it CINIC-10.tar.gz?")
    splits = {key: _sorted_split(archive, folder, names, images) for key, folder in wanted.items()}
    if "val" in splits and val_size is not None:
        splits["val"] = _subsample(splits["val"], val_size, split_seed)
    return splits


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
    splits = _READERS[dataset](archive, val_size, split_seed, workers or default_workers())
    val_count = len(splits["val"][1]) if "val" in splits else 0
    meta = build_meta(dataset, splits, md5_of(archive), val_count, split_seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the prepared folder is ordinary data
        _write_prepared(staging, splits, meta)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta
