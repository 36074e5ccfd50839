"""SVHN (cropped digits): three MATLAB v5 files, read with scipy.io, one at a time.

Each file holds `X` uint8 (32, 32, 3, N) and `y` (N, 1) with digit 0 stored as 10 (torchvision's
SVHN reads them the same way). As in the paper's code, training uses train + extra less a
validation set of `val_per_class` images of every digit from each (400 + 200 per digit: 6,000);
the test set is test. The prepared training arrays are 1.9 GB, so they are preallocated from the
files' headers (scipy.io.whosmat) and each file is copied in and freed before the next is read:
the peak is about one input file plus the output (benchmarks/bench_prepare.py measures it).

Importing this module is light (the registry reads the facts); reading and faking import numpy
and scipy.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.registry import Dataset, DatasetError, RawFile, counts, register_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    import numpy as np

    from sdnet.data.prepared import Split

URL = "http://ufldl.stanford.edu/housenumbers/"
# Which file holds which part; the official names (and md5s, as torchvision lists them) are
# in SVHN.files.
PARTS = ("train", "test", "extra")
DEFAULT_VAL_PER_CLASS = {"train": 400, "extra": 200}
GATHER_CHUNK = 8192  # images per copy step (25 MB of temporary)
FAKE_CHUNK = 4096  # images per fake generator task (each chunk has its own seeded generator)
SHAPE = (32, 32, 3)


class SVHN(Dataset):
    name = "svhn"
    title = "SVHN"
    files = (RawFile("train_32x32.mat", URL + "train_32x32.mat",
                     "e26dedcc434d2e4c54c9b2d4a06d8373"),
             RawFile("test_32x32.mat", URL + "test_32x32.mat",
                     "eb5a983be6a315427106f1b164d9cef3"),
             RawFile("extra_32x32.mat", URL + "extra_32x32.mat",
                     "a93ce644f1a588dc4d68dda5feec44a7"))
    num_classes = 10
    classes = tuple(str(d) for d in range(10))  # label = digit (the files store 0 as 10)
    image_size = 32
    augment = False  # the paper trains SVHN without augmentation
    fake_per_class = counts(train=60, test=20, extra=40)
    full_counts = counts(train=73_257, test=26_032, extra=531_131)  # images per file
    options = ("use_extra", "val_per_class")

    def part_file(self, part: str) -> str:
        """The official file name of a part (train, test, extra)."""
        return self.files[PARTS.index(part)].name

    def needed_files(self, options: Mapping[str, Any] | None = None) -> tuple[RawFile, ...]:
        """extra only with use_extra (the default)."""
        use_extra = (options or {}).get("use_extra")
        return self.files if use_extra in (None, True) else self.files[:2]

    # --- split options ---------------------------------------------------------------------

    def split_options(self, **given: Any) -> dict[str, Any]:
        """use_extra (default True) and val_per_class: the validation images per digit taken
        from each training file in use (default the paper's 400 from train, 200 from extra)."""
        given = {k: v for k, v in given.items() if v is not None}
        self._refuse_unknown(given)
        use_extra = bool(given.get("use_extra", True))
        per_class = dict(given.get("val_per_class") or {})
        unknown = sorted(set(per_class) - set(DEFAULT_VAL_PER_CLASS))
        if unknown:
            raise DatasetError(f"val_per_class: unknown key {unknown[0]!r}; the keys are "
                               f"{', '.join(DEFAULT_VAL_PER_CLASS)}")
        settings = {**DEFAULT_VAL_PER_CLASS, **per_class}
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise DatasetError(f"val_per_class {key} must be an integer >= 0, got {value!r}")
        settings = {k: int(v) for k, v in settings.items() if k == "train" or use_extra}
        return {"use_extra": use_extra, "val_per_class": settings}

    def option_schema(self) -> dict[str, dict]:
        return {
            "use_extra": {"type": "boolean", "default": True,
                          "description": "train on train + extra (the paper), else on train "
                          "only (extra is then not downloaded)"},
            "val_per_class": {
                "description": "validation images per class taken from train and from extra",
                "type": "object", "default": {}, "additionalProperties": False,
                "properties": {key: {"type": "integer", "minimum": 0, "default": value}
                               for key, value in DEFAULT_VAL_PER_CLASS.items()}},
        }

    def config_problem(self, entry: Mapping[str, Any]) -> str | None:
        """val_per_class within a fake's images per class (the real files: checked by prepare)."""
        fake = entry.get("fake")
        if fake is None:
            return None
        sizes = self.fake_counts(fake.get("per_class"))
        for part, count in (entry.get("val_per_class") or {}).items():
            if count > sizes[part]:
                return (f"val_per_class.{part}: {count} is more than the {sizes[part]} images "
                        f"per class in {part} of its fake (fake.per_class)")
        return None

    def fake_options(self, per_class: int | None = None) -> dict[str, Any]:
        """Validation images per digit that a small fake can give (the paper's 400/200 need
        the real files): a sixth of train's, an eighth of extra's images per digit."""
        sizes = self.fake_counts(per_class)
        return {"val_per_class": {"train": sizes["train"] // 6, "extra": sizes["extra"] // 8}}

    def meta_fields(self, raw: Mapping[str, Path], options: Mapping[str, Any]) -> dict:
        return {"use_extra": options["use_extra"], "val_per_class": options["val_per_class"]}

    # --- reading ----------------------------------------------------------------------------

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict[str, Split]:
        """train/val/test; the validation images of each digit are drawn, file by file, by a
        generator seeded with `split_seed`. Files are read one at a time into preallocated
        outputs."""
        import numpy as np

        val_per_class = options["val_per_class"]
        sources = ["train", "extra"] if options["use_extra"] else ["train"]
        paths = {part: raw[self.part_file(part)] for part in [*sources, "test"]}
        sizes = {part: mat_count(path) for part, path in paths.items()}
        for part in sources:  # so that each file fills exactly its share of the outputs
            if self.num_classes * val_per_class[part] > sizes[part]:
                raise SdnetError(f"val_per_class {part} = {val_per_class[part]} needs "
                                 f"{self.num_classes * val_per_class[part]} images, more than "
                                 f"the {sizes[part]} in {paths[part]}")
        val_count = self.num_classes * sum(val_per_class[part] for part in sources)
        train_count = sum(sizes[part] for part in sources) - val_count
        if train_count < 1:
            raise SdnetError(f"val_per_class {dict(val_per_class)} leaves no training images "
                             f"({', '.join(f'{k}: {sizes[k]}' for k in sources)})")
        train, val = _empty(train_count), _empty(val_count)
        rng = np.random.default_rng(split_seed)
        at_train = at_val = 0
        for part in sources:
            images, labels = read_mat(paths[part], sizes[part])
            val_idx = _val_indices(labels, val_per_class[part], rng, paths[part], part,
                                   self.num_classes)
            keep = np.ones(len(labels), bool)
            keep[val_idx] = False
            at_train = _gather(images, labels, np.flatnonzero(keep), train, at_train)
            at_val = _gather(images, labels, val_idx, val, at_val)
            del images, labels, keep  # free this file before the next one is read
        images, labels = read_mat(paths["test"], sizes["test"])
        splits = {"train": train, "val": val, "test": (np.ascontiguousarray(images), labels)}
        return {k: v for k, v in splits.items() if k != "val" or len(v[1])}

    # --- fakes ------------------------------------------------------------------------------

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        """The three .mat files in folder `out`; compressed like the real ones except at full
        size (zlib over 1.9 GB of noise would cost minutes)."""
        import contextlib

        from sdnet.data.common import default_workers, process_pool
        from sdnet.data.fake import write_mat

        if full_size:
            sizes = dict(self.full_counts)
        else:
            sizes = {part: self.num_classes * n for part, n in self.fake_counts(per_class).items()}
        big = sum(sizes.values()) >= 50_000  # a pool pays off for full-size fakes only
        with process_pool(default_workers()) if big else contextlib.nullcontext() as pool:
            for index, part in enumerate(PARTS):
                x, y = _fake_arrays(index, sizes[part], seed, pool)
                write_mat(out / self.part_file(part), {"X": x, "y": y}, compress=not full_size)
                del x, y
        return out


# What scipy.io raises on a damaged file (a truncated zlib stream, a bad tag, a cut header).
def _unreadable() -> tuple[type[BaseException], ...]:
    import zlib

    from scipy.io.matlab import MatReadError

    return (MatReadError, ValueError, TypeError, KeyError, IndexError, OSError, EOFError,
            zlib.error, NotImplementedError)


def _check_version(path: Path) -> None:
    """One line for anything but a MATLAB v5 file: a v7.3 (HDF5) file, a v4 file, no .mat."""
    from scipy.io.matlab import MatReadError, matfile_version

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
    import scipy.io

    _check_version(path)
    try:
        variables = {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(path)}
    except _unreadable() as err:
        raise SdnetError(f"{path}: unreadable MATLAB file ({err})") from err
    missing = [k for k in ("X", "y") if k not in variables]
    if missing:
        raise SdnetError(f"{path}: no {' or '.join(repr(k) for k in missing)} variable (found "
                         f"{sorted(variables) or 'none'}); is it a complete (not truncated) SVHN "
                         "*_32x32.mat file?")
    x_shape, y_shape = variables["X"], variables["y"]
    if len(x_shape) != 4 or x_shape[:3] != SHAPE:
        raise SdnetError(f"{path}: X must be (32, 32, 3, N), got {x_shape}")
    count = x_shape[3]
    if y_shape not in ((count, 1), (1, count)):
        raise SdnetError(f"{path}: X holds {count} images but y has shape {y_shape}: "
                         "mismatched lengths")
    return count


def read_mat(path: Path, count: int) -> Split:
    """(images (N, 32, 32, 3) -- a view of the file's X --, labels 0..9) of one SVHN file."""
    import numpy as np
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except _unreadable() as err:
        raise SdnetError(f"{path}: unreadable MATLAB file ({err})") from err
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    del mat
    if x.dtype != np.uint8 or x.shape != (*SHAPE, count):
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
                 path: Path, key: str, num_classes: int) -> np.ndarray:
    """Sorted indices of `per_class` images of every digit, drawn by `rng`."""
    import numpy as np

    chosen = []
    for digit in range(num_classes):
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
    import numpy as np

    return np.empty((count, *SHAPE), np.uint8), np.empty(count, np.int64)


def _fake_chunk(args: tuple[np.ndarray, int, int, int]) -> np.ndarray:
    """Images of one chunk, from a generator of its own: the bytes do not depend on how many
    processes made them (a pool task)."""
    import numpy as np

    from sdnet.data.fake import fake_images

    labels, seed, file_index, chunk_index = args
    return fake_images(labels, np.random.default_rng([seed, file_index, chunk_index]))


def _fake_arrays(file_index: int, count: int, seed: int, pool: Any
                 ) -> tuple[np.ndarray, np.ndarray]:
    """X uint8 (32, 32, 3, N) in MATLAB's (Fortran) order and y (N, 1) with 10 for digit 0."""
    import numpy as np

    labels = np.random.default_rng([seed, file_index]).permutation(np.arange(count) % 10)
    starts = range(0, count, FAKE_CHUNK)
    tasks = [(labels[i:i + FAKE_CHUNK], seed, file_index, i // FAKE_CHUNK + 1) for i in starts]
    x = np.empty((*SHAPE, count), np.uint8, order="F")
    for start, images in zip(starts, pool.map(_fake_chunk, tasks) if pool else
                             map(_fake_chunk, tasks)):
        x[..., start:start + len(images)] = images.transpose(1, 2, 3, 0)
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    return x, y


register_dataset(SVHN())
