"""Fake data sets in exactly the real formats, with class patterns a small ResNet learns quickly.

Each class has its own colour, stripe orientation (horizontal/vertical, so a horizontal flip keeps
it) and stripe frequency (CIFAR-100's 100 classes: 10 colours x 10 orientation/frequency pairs);
the phase is random (translations keep it) and noise is added. Fakes are byte-reproducible for a
seed: sorted members, tar and gzip mtime 0, fixed owners; SVHN's .mat files get a fixed header.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.io
from PIL import Image

from sdnet import spec
from sdnet.data.common import (
    CIFAR100_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CLASSES,
    DATASET_INFO,
    default_workers,
    process_pool,
)
from sdnet.data.svhn import FILES as SVHN_FILES
from sdnet.errors import SdnetError
from sdnet.io import atomic_open

CIFAR_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CINIC_SPLITS = ("train", "valid", "test")
# Images per class as (train, test): CIFAR-10/100 have train and test; CINIC-10 uses the train
# count for each of train, valid and test. An explicit per_class applies to every split.
DEFAULT_PER_CLASS = {"cifar10": (60, 20), "cifar100": (40, 10), "cinic10": (20, 20)}
FULL_PER_CLASS = {"cifar10": (5000, 1000), "cifar100": (500, 100), "cinic10": (9000, 9000)}
# SVHN: images per digit of each file, and the real files' image counts for --full-size.
SVHN_PER_CLASS = {"train": 60, "test": 20, "extra": 40}
SVHN_FULL_COUNTS = {"train": 73_257, "test": 26_032, "extra": 531_131}
SVHN_CHUNK = 4096  # images per generator task (each chunk has its own seeded generator)
# The 116-byte text field scipy would stamp with the current time.
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: sdnet data fake (not real images)"
# CIFAR-100's fine -> coarse (superclass) label map, for the fake's coarse_labels.
CIFAR100_COARSE_OF_FINE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
GZIP_LEVEL = 1  # fakes are mostly noise; a higher level costs time and saves little
# Distinct class colours (unit-ish RGB directions added to grey).
_COLOURS = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [0.0, 0.5, 0.5], [0.6, 0.6, 0.6],
], dtype=np.float32)


def fake_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 32, 32, 3) images with a class-dependent striped colour pattern plus noise.

    Label l has colour l % 10; its tens digit k = l // 10 (CIFAR-100) flips the orientation
    (k odd) and shifts the frequency (by k // 2), so each colour has 10 distinct patterns while
    labels 0..9 keep the 10-class patterns.
    """
    n = len(labels)
    colour_id, k = labels % 10, labels // 10
    coord = np.arange(32, dtype=np.float32)
    vertical = ((colour_id % 2) ^ (k % 2) == 1)[:, None, None]
    pos = np.where(vertical, coord[None, None, :], coord[None, :, None])  # (n, 32, 32)
    freq = (2 + (colour_id % 3 + k // 2) % 5).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    stripes = np.cos(2 * np.pi * freq * pos / 32 + phase)  # (n, 32, 32)
    colour = _COLOURS[colour_id][:, None, None, :]  # (n, 1, 1, 3)
    brightness = rng.uniform(-20, 20, n).astype(np.float32)[:, None, None, None]
    pixels = 128 + brightness + 60 * colour * (1 + stripes[..., None]) - 60 * colour.mean()
    pixels += 18 * rng.standard_normal(pixels.shape, dtype=np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _chunked_images(labels: np.ndarray, rng: np.random.Generator, chunk: int = 4096
                    ) -> np.ndarray:
    """fake_images in chunks, to bound float32 memory for full-size fakes."""
    parts = [fake_images(labels[i:i + chunk], rng) for i in range(0, len(labels), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 32, 32, 3), np.uint8)


def _balanced_labels(per_class: int, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(classes), per_class)).astype(np.int64)


# --- CIFAR-10: Python 2 style pickles -------------------------------------------------------

class Py2Str(bytes):
    """Bytes that pickle as a Python 2 `str`: str keys with encoding='latin1', bytes with 'bytes'."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add an opcode writer
    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + struct.pack("<B", n) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str
    dispatch[bytes] = save_py2str  # numpy's raw array data, as Python 2 wrote it


def py2_pickle(obj: object) -> bytes:
    """Pickle (protocol 2) the way the CIFAR-10 files were written by Python 2."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _cifar_batch(name: str, images: np.ndarray, labels: np.ndarray, start: int) -> bytes:
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
    return py2_pickle({
        Py2Str(b"batch_label"): Py2Str(name.encode()),
        Py2Str(b"labels"): [int(v) for v in labels],
        Py2Str(b"data"): data,
        Py2Str(b"filenames"): [Py2Str(f"fake_{start + i:06d}.png".encode())
                               for i in range(len(labels))],
    })


def _cifar_members(per_class: int, test_per_class: int, seed: int
                   ) -> Iterator[tuple[str, bytes | None]]:
    rng = np.random.default_rng(seed)
    train_labels = _balanced_labels(per_class, rng)
    test_labels = _balanced_labels(test_per_class, rng)
    yield CIFAR_DIR, None
    meta = {Py2Str(b"num_cases_per_batch"): len(train_labels) // 5,
            Py2Str(b"label_names"): [Py2Str(c.encode()) for c in CLASSES],
            Py2Str(b"num_vis"): 3072}
    yield f"{CIFAR_DIR}/batches.meta", py2_pickle(meta)
    for b, idx in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
        labels = train_labels[idx]
        name = f"training batch {b} of 5"
        yield (f"{CIFAR_DIR}/data_batch_{b}",
               _cifar_batch(name, _chunked_images(labels, rng), labels, int(idx[0])))
    yield (f"{CIFAR_DIR}/test_batch",
           _cifar_batch("testing batch 1 of 1", _chunked_images(test_labels, rng), test_labels, 0))


def _cifar100_pickle(name: str, images: np.ndarray, labels: np.ndarray) -> bytes:
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
    return py2_pickle({
        Py2Str(b"filenames"): [Py2Str(f"fake_{name}_{i:06d}.png".encode())
                               for i in range(len(labels))],
        Py2Str(b"batch_label"): Py2Str(f"{name}ing batch 1 of 1".encode()),
        Py2Str(b"fine_labels"): [int(v) for v in labels],
        Py2Str(b"coarse_labels"): [CIFAR100_COARSE_OF_FINE[int(v)] for v in labels],
        Py2Str(b"data"): data,
    })


def _cifar100_members(per_class: int, test_per_class: int, seed: int
                      ) -> Iterator[tuple[str, bytes | None]]:
    rng = np.random.default_rng(seed)
    train_labels = _balanced_labels(per_class, rng, len(CIFAR100_CLASSES))
    test_labels = _balanced_labels(test_per_class, rng, len(CIFAR100_CLASSES))
    yield CIFAR100_DIR, None
    yield f"{CIFAR100_DIR}/file.txt~", b""  # the real archive ships this stray editor backup
    meta = {Py2Str(b"fine_label_names"): [Py2Str(c.encode()) for c in CIFAR100_CLASSES],
            Py2Str(b"coarse_label_names"): [Py2Str(c.encode()) for c in CIFAR100_COARSE_CLASSES]}
    yield f"{CIFAR100_DIR}/meta", py2_pickle(meta)
    test_images = _chunked_images(test_labels, rng)
    train_images = _chunked_images(train_labels, rng)
    yield f"{CIFAR100_DIR}/test", _cifar100_pickle("test", test_images, test_labels)
    yield f"{CIFAR100_DIR}/train", _cifar100_pickle("train", train_images, train_labels)


# --- CINIC-10: PNG folders -----------------------------------------------------------------

def _png_bytes(image: np.ndarray, mode: str) -> bytes:
    """PNG of an RGB array saved as RGB, greyscale ('L') or palette ('P'), like CINIC's mix."""
    pil = Image.fromarray(image, "RGB")
    if mode == "L":
        pil = pil.convert("L")
    elif mode == "P":
        pil = pil.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_mode(index: int) -> str:
    """Which images of a fake CINIC split are greyscale or palette PNGs (deterministic)."""
    return "L" if index % 10 == 3 else "P" if index % 10 == 7 else "RGB"


def _encode_chunk(args: tuple[np.ndarray, list[str]]) -> list[bytes]:
    images, modes = args
    return [_png_bytes(img, mode) for img, mode in zip(images, modes)]


def _cinic_split(split: str, per_class: int, rng: np.random.Generator,
                 pool: ProcessPoolExecutor | None) -> Iterator[tuple[str, bytes | None]]:
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = _chunked_images(labels, rng)
    modes = [png_mode(i) for i in range(len(labels))]
    chunks = [(images[i:i + 2000], modes[i:i + 2000]) for i in range(0, len(labels), 2000)]
    encoded = pool.map(_encode_chunk, chunks) if pool else map(_encode_chunk, chunks)
    yield split, None
    pngs = (png for chunk in encoded for png in chunk)  # written while later chunks encode
    for k, png in enumerate(pngs):
        c, i = divmod(k, per_class)
        if i == 0:
            yield f"{split}/{CLASSES[c]}", None
        yield f"{split}/{CLASSES[c]}/fake-{split}-{k:06d}.png", png


def _cinic_members(per_class: int, seed: int, workers: int) -> Iterator[tuple[str, bytes | None]]:
    rng = np.random.default_rng(seed)
    yield "README.md", b"Fake CINIC-10 written by `sdnet data fake` (not real images).\n"
    with process_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for split in CINIC_SPLITS:
            yield from _cinic_split(split, per_class, rng, pool)


# --- SVHN: MATLAB v5 files -------------------------------------------------------------------

def _svhn_chunk(args: tuple[np.ndarray, int, int, int]) -> np.ndarray:
    """Images of one chunk, from a generator of its own: the bytes do not depend on how many
    processes made them."""
    labels, seed, file_index, chunk_index = args
    return fake_images(labels, np.random.default_rng([seed, file_index, chunk_index]))


def _svhn_arrays(key: str, count: int, seed: int, pool: ProcessPoolExecutor | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """X uint8 (32, 32, 3, N) in MATLAB's (Fortran) order and y (N, 1) with 10 for digit 0."""
    file_index = list(SVHN_FILES).index(key)
    labels = np.random.default_rng([seed, file_index]).permutation(np.arange(count) % 10)
    starts = range(0, count, SVHN_CHUNK)
    tasks = [(labels[i:i + SVHN_CHUNK], seed, file_index, i // SVHN_CHUNK + 1) for i in starts]
    x = np.empty((32, 32, 3, count), np.uint8, order="F")
    for start, images in zip(starts, pool.map(_svhn_chunk, tasks) if pool else
                             map(_svhn_chunk, tasks)):
        x[..., start:start + len(images)] = images.transpose(1, 2, 3, 0)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    return x, y


def write_mat(path: Path, variables: dict[str, np.ndarray], compress: bool) -> Path:
    """A MATLAB v5 file (scipy.io.savemat) with a fixed header text instead of the time."""
    with atomic_open(path, "wb") as fh:
        scipy.io.savemat(fh, variables, format="5", do_compression=compress)
        fh.seek(0)
        fh.write(MAT_HEADER.ljust(116, b" "))
    return Path(path)


def _svhn_fake(folder: Path, counts: dict[str, int], seed: int, compress: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    big = sum(counts.values()) >= 50_000  # a pool pays off for full-size fakes only
    with process_pool(default_workers()) if big else contextlib.nullcontext() as pool:
        for key, name in SVHN_FILES.items():
            x, y = _svhn_arrays(key, counts[key], seed, pool)
            write_mat(folder / name, {"X": x, "y": y}, compress)
            del x, y
    return folder


# --- Archive writing ------------------------------------------------------------------------

def _tarinfo(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


def write_tar_gz(path: Path, members: Iterable[tuple[str, bytes | None]]) -> Path:
    """Write (name, bytes or None for a folder) members, in the given order, reproducibly."""
    with atomic_open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                          compresslevel=GZIP_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            info = _tarinfo(name, None if payload is None else len(payload))
            tar.addfile(info, None if payload is None else io.BytesIO(payload))
    return Path(path)


def make_fake(fmt: str, out: Path | str, per_class: int | None = None, seed: int = 0,
              full_size: bool = False) -> Path:
    """Write a fake data set `fmt` to `out` and return its path: for an archive format a file
    path (or a folder to put the archive in under its real name); for svhn the folder that
    receives its three .mat files."""
    spec.check_dataset(fmt)
    if per_class is not None and full_size:
        raise SdnetError("give either --per-class or --full-size, not both")
    if per_class is not None and per_class < 1:
        raise SdnetError(f"per_class must be >= 1, got {per_class}")
    out = Path(out)
    if fmt == "svhn":
        if out.exists() and not out.is_dir():
            raise SdnetError(f"{out} is a file; svhn fakes are a folder of .mat files")
        counts = SVHN_FULL_COUNTS if full_size else {
            key: 10 * (per_class or n) for key, n in SVHN_PER_CLASS.items()}
        # The real files are compressed; zlib over 1.9 GB of full-size noise would cost minutes.
        return _svhn_fake(out, counts, seed, compress=not full_size)
    counts = FULL_PER_CLASS[fmt] if full_size else DEFAULT_PER_CLASS[fmt]
    train_per_class, test_per_class = counts if per_class is None else (per_class, per_class)
    if out.is_dir():
        out = out / DATASET_INFO[fmt].archive
    if fmt == "cifar10":
        members = _cifar_members(train_per_class, test_per_class, seed)
    elif fmt == "cifar100":
        members = _cifar100_members(train_per_class, test_per_class, seed)
    else:
        big = train_per_class * 30 >= 20_000  # a pool pays off for full-size fakes only
        members = _cinic_members(train_per_class, seed, default_workers() if big else 1)
    return write_tar_gz(out, members)


def fake_val_per_class(per_class: int | None = None) -> dict[str, int]:
    """Validation images per digit that a small SVHN fake can give (the paper's 400/200 need
    the real files): a sixth of train's, an eighth of extra's images per digit."""
    return {"train": (per_class or SVHN_PER_CLASS["train"]) // 6,
            "extra": (per_class or SVHN_PER_CLASS["extra"]) // 8}


def fake_prepared(dataset: str, root: Path | str, per_class: int | None = None, seed: int = 0,
                  val_size: int | None = None, *, use_extra: bool | None = None,
                  val_per_class: dict[str, int] | None = None) -> Path:
    """Fake files -> download (file:// URL, md5 checked) -> prepare: the real path end to end.

    Returns the prepared folder `root/<dataset>`; tests and demos share it. svhn takes
    `use_extra` and `val_per_class` (default: fake_val_per_class) instead of `val_size`.
    """
    from sdnet.data.download import download, md5_of
    from sdnet.data.prepare import prepare

    root = Path(root)
    info = DATASET_INFO[dataset]
    if dataset != "svhn":
        fake = make_fake(dataset, root / "fake" / info.archive, per_class, seed)
        archive = download(dataset, root / "raw", url=fake.resolve().as_uri(), md5=md5_of(fake))
        prepare(dataset, archive, root / dataset, val_size=val_size)
        return root / dataset
    fake = make_fake(dataset, root / "fake" / dataset, per_class, seed)
    for name in info.files:
        download(dataset, root / "raw" / dataset, url=fake.resolve().as_uri(),
                 md5=md5_of(fake / name), file=name)
    prepare(dataset, root / "raw" / dataset, root / dataset, val_size=val_size,
            use_extra=use_extra, val_per_class=val_per_class or fake_val_per_class(per_class))
    return root / dataset
