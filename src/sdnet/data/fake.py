"""Fake archives in exactly the real formats, with class patterns a small ResNet learns quickly.

Each class has its own colour, stripe orientation (horizontal/vertical, so a horizontal flip keeps
it) and stripe frequency; the phase is random (translations keep it) and noise is added. Archives
are byte-reproducible for a seed: sorted members, tar and gzip mtime 0, fixed owners.
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
from PIL import Image

from sdnet import spec
from sdnet.data.common import CLASSES, DATASET_INFO, default_workers, process_pool
from sdnet.errors import SdnetError
from sdnet.io import atomic_open

CIFAR_DIR = "cifar-10-batches-py"
CINIC_SPLITS = ("train", "valid", "test")
# Images per class as (train, test): CIFAR-10 has train and test; CINIC-10 uses the train
# count for each of train, valid and test. An explicit per_class applies to every split.
DEFAULT_PER_CLASS = {"cifar10": (60, 20), "cinic10": (20, 20)}
FULL_PER_CLASS = {"cifar10": (5000, 1000), "cinic10": (9000, 9000)}
GZIP_LEVEL = 1  # fakes are mostly noise; a higher level costs time and saves little
# Distinct class colours (unit-ish RGB directions added to grey).
_COLOURS = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [0.0, 0.5, 0.5], [0.6, 0.6, 0.6],
], dtype=np.float32)


def fake_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 32, 32, 3) images with a class-dependent striped colour pattern plus noise."""
    n = len(labels)
    coord = np.arange(32, dtype=np.float32)
    vertical = (labels % 2 == 1)[:, None, None]
    pos = np.where(vertical, coord[None, None, :], coord[None, :, None])  # (n, 32, 32)
    freq = (2 + labels % 3).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    stripes = np.cos(2 * np.pi * freq * pos / 32 + phase)  # (n, 32, 32)
    colour = _COLOURS[labels][:, None, None, :]  # (n, 1, 1, 3)
    brightness = rng.uniform(-20, 20, n).astype(np.float32)[:, None, None, None]
    pixels = 128 + brightness + 60 * colour * (1 + stripes[..., None]) - 60 * colour.mean()
    pixels += 18 * rng.standard_normal(pixels.shape, dtype=np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _chunked_images(labels: np.ndarray, rng: np.random.Generator, chunk: int = 4096
                    ) -> np.ndarray:
    """fake_images in chunks, to bound float32 memory for full-size fakes."""
    parts = [fake_images(labels[i:i + chunk], rng) for i in range(0, len(labels), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 32, 32, 3), np.uint8)


def _balanced_labels(per_class: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(len(CLASSES)), per_class)).astype(np.int64)


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
    """Write a fake archive of data set `fmt` to `out` (a file path, or a folder to put the
    archive in under its real name) and return its path."""
    spec.check_dataset(fmt)
    if per_class is not None and full_size:
        raise SdnetError("give either --per-class or --full-size, not both")
    if per_class is not None and per_class < 1:
        raise SdnetError(f"per_class must be >= 1, got {per_class}")
    counts = FULL_PER_CLASS[fmt] if full_size else DEFAULT_PER_CLASS[fmt]
    train_per_class, test_per_class = counts if per_class is None else (per_class, per_class)
    out = Path(out)
    if out.is_dir():
        out = out / DATASET_INFO[fmt].archive
    if fmt == "cifar10":
        members = _cifar_members(train_per_class, test_per_class, seed)
    else:
        big = train_per_class * 30 >= 20_000  # a pool pays off for full-size fakes only
        members = _cinic_members(train_per_class, seed, default_workers() if big else 1)
    return write_tar_gz(out, members)


def fake_prepared(dataset: str, root: Path | str, per_class: int | None = None, seed: int = 0,
                  val_size: int | None = None) -> Path:
    """Fake archive -> download (file:// URL, md5 checked) -> prepare: the real path end to end.

    Returns the prepared folder `root/<dataset>`; tests and demos share it.
    """
    from sdnet.data.download import download, md5_of
    from sdnet.data.prepare import prepare

    root = Path(root)
    fake = make_fake(dataset, root / "fake" / DATASET_INFO[dataset].archive, per_class, seed)
    archive = download(dataset, root / "raw", url=fake.resolve().as_uri(), md5=md5_of(fake))
    prepare(dataset, archive, root / dataset, val_size=val_size)
    return root / dataset
