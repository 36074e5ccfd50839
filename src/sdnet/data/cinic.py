"""CINIC-10: a tar of train/, valid/, test/ folders of 10 class folders of 32x32 PNGs.

The archive is read as one stream (writing 270,000 small files to disk costs minutes); PNGs are
decoded by a process pool while the stream is still being read, greyscale and palette PNGs
converted to RGB. Images are ordered by class (CIFAR-10's order) and file name, so the same
archive always gives the same bytes.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdnet.data.archive import iter_files
from sdnet.data.common import CLASSES, process_pool
from sdnet.data.prepared import Split
from sdnet.errors import SdnetError

CINIC_SPLITS = {"train": "train", "val": "valid", "test": "test"}
DECODE_CHUNK = 1000  # PNGs per task: small enough to overlap reading and decoding


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


def prepare_splits(archive: Path, val_size: int | None, split_seed: int,
                   workers: int) -> dict[str, Split]:
    """train/val/test of a CINIC-10 archive: its shipped splits (val: all of valid/, a seeded
    subset of `val_size`, or none for 0)."""
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
