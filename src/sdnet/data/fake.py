"""Fake data sets in exactly the real formats, with class patterns a small ResNet learns quickly.

Each data set's object writes its own fake (`write_fake`, in its format module) from the pieces
here: the class patterns, reproducible tar.gz / zip / MATLAB v5 / Python 2 pickle writers.
`make_fake` and `fake_prepared` work for any registered data set.

Each class has its own colour, pattern and frequency, all kept by a horizontal flip and (the
phase being random) by translations; noise is added. Fakes are byte-reproducible for a seed:
sorted members, fixed timestamps and owners; MATLAB files get a fixed header.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sdnet.atomic import atomic_open
from sdnet.data.registry import get_dataset
from sdnet.errors import SdnetError

GZIP_LEVEL = 1  # fakes are mostly noise; a higher level costs time and saves little
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no timestamp of the day
# The 116-byte text field scipy would stamp with the current time.
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: sdnet data fake (not real images)"
# Distinct class colours (unit-ish RGB directions added to grey).
_COLOURS = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [0.0, 0.5, 0.5], [0.6, 0.6, 0.6],
], dtype=np.float32)


def fake_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 (N, size, size, 3) images with a class-dependent colour pattern plus noise.

    Label l has colour l % 10; k = l // 10 sets the pattern: for k < 10 (labels 0..99) stripes
    whose orientation flips with k's parity and whose frequency shifts by k // 2, so each colour
    has 10 distinct stripe patterns; for k in 10..19 (labels 100..199, Tiny ImageNet) a grid of
    the same frequencies (its column frequency 2 higher for odd k). Frequencies are in cycles per
    image, so a 64x64 fake looks like a 32x32 one. The waves are computed per row and per column
    and broadcast, the pixels in place: full-size fakes are large.
    """
    n = len(labels)
    colour_id, k = labels % 10, labels // 10
    coord = np.arange(size, dtype=np.float32)
    vertical = ((colour_id % 2) ^ (k % 2) == 1)[:, None, None]
    freq = (2 + (colour_id % 3 + (k % 10) // 2) % 5).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    down = np.cos(2 * np.pi * freq * coord[None, :, None] / size + phase)  # (n, size, 1)
    across = np.cos(2 * np.pi * freq * coord[None, None, :] / size + phase)  # (n, 1, size)
    stripes = np.where(vertical, across, down)  # (n, size, size)
    grid = (k >= 10)[:, None, None]
    if grid.any():
        finer = np.cos(2 * np.pi * (freq + 2 * vertical) * coord[None, None, :] / size
                       + np.float32(1.618) * phase)
        stripes = np.where(grid, down * finer, stripes)
    colour = 60 * _COLOURS[colour_id][:, None, None, :]  # (n, 1, 1, 3)
    brightness = rng.uniform(-20, 20, n).astype(np.float32)[:, None, None, None]
    pixels = rng.standard_normal((n, size, size, 3), dtype=np.float32)
    pixels *= 18
    pixels += colour * (1 + stripes[..., None])
    pixels += 128 + brightness - colour.mean(axis=-1, keepdims=True)  # grey on average
    np.clip(pixels, 0, 255, out=pixels)
    return np.rint(pixels, out=pixels).astype(np.uint8)


def chunked_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32,
                   chunk: int = 4096) -> np.ndarray:
    """fake_images in chunks, to bound float32 memory for full-size fakes."""
    parts = [fake_images(labels[i:i + chunk], rng, size) for i in range(0, len(labels), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)


def balanced_labels(per_class: int, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    """`per_class` labels of each class, shuffled."""
    return rng.permutation(np.repeat(np.arange(classes), per_class)).astype(np.int64)


def image_mode(index: int) -> str:
    """Which images of a fake image folder are greyscale ('L') or palette ('P') files, as real
    ones have some (deterministic)."""
    return "L" if index % 10 == 3 else "P" if index % 10 == 7 else "RGB"


# --- Python 2 pickles (the CIFAR batches) ---------------------------------------------------

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
    """Pickle (protocol 2) the way the CIFAR files were written by Python 2."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# --- Archive and MATLAB writers -------------------------------------------------------------

Members = Iterable[tuple[str, "bytes | None"]]  # (name, bytes; None for a folder)


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


def write_tar_gz(path: Path, members: Members) -> Path:
    """Write (name, bytes or None for a folder) members, in the given order, reproducibly."""
    with atomic_open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                          compresslevel=GZIP_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            info = _tarinfo(name, None if payload is None else len(payload))
            tar.addfile(info, None if payload is None else io.BytesIO(payload))
    return Path(path)


def write_zip(path: Path, members: Members, *, compress: bool = False) -> Path:
    """A zip of (name, bytes or None for a folder) members in the given order, reproducibly
    (fixed dates and permissions); JPEGs gain nothing from deflate, so stored by default."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_open(path, "wb") as raw, zipfile.ZipFile(raw, "w", compression=method) as zf:
        for name, payload in members:
            if payload is None:
                info = zipfile.ZipInfo(name.rstrip("/") + "/", date_time=ZIP_DATE)
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.external_attr = 0o100644 << 16
                info.compress_type = method
                zf.writestr(info, payload)
    return Path(path)


def write_mat(path: Path, variables: dict[str, np.ndarray], compress: bool) -> Path:
    """A MATLAB v5 file (scipy.io.savemat) with a fixed header text instead of the time.
    scipy is imported here, not at the top: the fakes of the other data sets (the CUDA tests'
    CIFAR-10) must not need it."""
    import scipy.io

    with atomic_open(path, "wb") as fh:
        scipy.io.savemat(fh, variables, format="5", do_compression=compress)
        fh.seek(0)
        fh.write(MAT_HEADER.ljust(116, b" "))
    return Path(path)


# --- Any registered data set ------------------------------------------------------------------

def make_fake(fmt: str, out: Path | str, per_class: int | None = None, seed: int = 0,
              full_size: bool = False) -> Path:
    """Write a fake of data set `fmt` to `out` and return its path: for a single-archive data
    set a file path (or a folder to put the archive in under its real name); for a folder data
    set (SVHN) the folder that receives its files."""
    dataset = get_dataset(fmt)
    if per_class is not None and full_size:
        raise SdnetError("give either --per-class or --full-size, not both")
    if per_class is not None and per_class < 1:
        raise SdnetError(f"per_class must be >= 1, got {per_class}")
    out = Path(out)
    if dataset.folder:
        if out.exists() and not out.is_dir():
            raise SdnetError(f"{out} is a file; {fmt} fakes are a folder of "
                             f"{', '.join(dataset.file_names)}")
        out.mkdir(parents=True, exist_ok=True)
    elif out.is_dir():
        out = out / dataset.files[0].name
    return dataset.write_fake(out, per_class, seed, full_size)


def fake_prepared(dataset: str, root: Path | str, per_class: int | None = None, seed: int = 0,
                  **options: Any) -> Path:
    """Fake files -> download (file:// URL, md5 checked) -> prepare: the real path end to end.

    Returns the prepared folder `root/<dataset>`; tests and demos share it. `options` are the
    data set's split options (val_size; SVHN: use_extra, val_per_class); where the defaults need
    the real files, the data set's `fake_options` (SVHN: 10 + 5 images per digit) apply.
    """
    from sdnet.data.download import download, md5_of
    from sdnet.data.prepare import prepare

    root = Path(root)
    ds = get_dataset(dataset)
    mirror = root / "fake" / dataset
    mirror.mkdir(parents=True, exist_ok=True)
    make_fake(dataset, mirror, per_class, seed)
    options = {**ds.fake_options(per_class), **{k: v for k, v in options.items() if v is not None}}
    raw = root / "raw" / dataset
    for file in ds.needed_files(options):
        source = mirror if ds.folder else mirror / file.name
        download(dataset, raw, url=source.resolve().as_uri(), md5=md5_of(mirror / file.name),
                 file=file.name)
    prepare(dataset, raw, root / dataset, **options)
    return root / dataset
