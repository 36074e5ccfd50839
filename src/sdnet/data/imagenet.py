"""ImageNet (ILSVRC-2012): the three official files the user brings, prepared once in two forms.

Files (one folder, `datasets.imagenet.url`; they cannot be downloaded without an image-net.org
login): `ILSVRC2012_img_train.tar` (one inner `<wnid>.tar` per class), `ILSVRC2012_img_val.tar`
(flat, 50,000 JPEGs) and `ILSVRC2012_devkit_t12.tar.gz` (`data/meta.mat`, the validation ground
truth). Classes are the devkit's leaf synsets (num_children == 0) in sorted-wnid order, as
torchvision and fb.resnet.torch number them (never ILSVRC2012_ID - 1); the class count is read
from the devkit, so a fake may have fewer.

Splits: test = the official validation images (labels from the ground truth, IDs mapped through
the devkit); val = a seeded, stratified `val_size` slice of train (default 10 per class); train =
the rest. The prepared folder holds

- `train.jpegs` + `train.npz`: every training image re-encoded as a baseline RGB JPEG (quality
  90) whose longer side is at most `max_side` (default 512), concatenated; `train.npz` is the
  index (offsets, lengths, heights, widths, labels). `sdnet.data.jpeg_loader` memory-maps it and
  decodes batches on the device;
- `val.npz`, `test.npz`: fb.resnet.torch's evaluation view (shorter side 256, bicubic; centre
  crop 224) as uint8 arrays in the format of every other data set, so evaluation is the usual
  on-device path;
- `meta.json` (last), with fb.resnet.torch's fixed mean and std.

The archives are streamed with tarfile (never extracted); decoding runs in the process pool of
`sdnet.data.common`. PNG files named .JPEG, CMYK and greyscale JPEGs (all in the real archive)
become RGB. Prepare is resumable: every class (and every chunk of the test images) is written to
a work folder beside the output as it completes, so an interrupted prepare continues where it
stopped; the output appears (atomically) only when complete. Importing this module is light.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.registry import Dataset, DatasetError, RawFile, counts, register_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    import numpy as np

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
URL = "https://image-net.org/data/ILSVRC/2012/"
DEVKIT_ROOT = "ILSVRC2012_devkit_t12"
META_MAT = f"{DEVKIT_ROOT}/data/meta.mat"
GROUND_TRUTH = f"{DEVKIT_ROOT}/data/ILSVRC2012_validation_ground_truth.txt"
WHERE = ("ImageNet cannot be downloaded without a login: register at https://image-net.org, "
         "download ILSVRC2012's training images (Task 1 & 2), validation images (all tasks) "
         "and development kit (Task 1 & 2), and set datasets.imagenet.url (or --url) to the "
         f"folder holding {TRAIN_TAR}, {VAL_TAR}, {DEVKIT}")
# fb.resnet.torch's normalisation (the ImageNet statistics every ResNet recipe uses).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EVAL_RESIZE = 256  # shorter side, bicubic
CROP = 224
DEFAULT_MAX_SIDE = 512
JPEG_QUALITY = 90
DEFAULT_VAL_PER_CLASS = 10  # val_size None: 10 per class (10,000 of the real set)
TEST_CHUNK = 1000  # test images per resumable unit
FAKE_CLASSES = 5
TRAIN_FORMAT = "jpeg"  # meta.json "train_format": train.jpegs + the index in train.npz
WORK_VERSION = 1


@dataclass(frozen=True)
class Devkit:
    """The classes (sorted wnids) and the official validation labels, from the devkit."""

    wnids: tuple[str, ...]        # label order
    names: tuple[str, ...]        # each class's first name in `words`
    test_labels: tuple[int, ...]  # label of ILSVRC2012_val_00000001.JPEG, ...


class ImageNet(Dataset):
    name = "imagenet"
    title = "ImageNet"
    files = (RawFile(TRAIN_TAR, URL + TRAIN_TAR, "1d675b47d978889d74fa0da5fadfb00e"),
             RawFile(VAL_TAR, URL + VAL_TAR, "29b22e2961454d5413ddabcf34fc5622"),
             RawFile(DEVKIT, URL + DEVKIT, "fa75699e90414af021442c21a62c3abf"))
    num_classes = 1000  # the real set's; prepare reads the count from the devkit
    classes = None
    image_size = CROP
    augment = True  # fb.resnet.torch's: random-sized crop, colour jitter, lighting, flip
    fake_per_class = counts(train=8, val=3)  # "val": the official val (our test split)
    real_per_class = counts(train=732, val=50)  # train: the smallest class (val_size's limit)
    real_sizes = counts(train=1_281_167, val=50_000)  # images per file (sdnet estimate)
    options = ("val_size", "max_side")
    user_supplied = WHERE  # sdnet.data.download: never fetched from the official URL

    # --- split options ---------------------------------------------------------------------

    def _classes(self, per_class: Mapping[str, int]) -> int:
        return self.num_classes if dict(per_class) == dict(self.real_per_class) else FAKE_CLASSES

    def val_limit(self, per_class: Mapping[str, int]) -> int:
        """Stratified: every class keeps at least one training image."""
        return (per_class["train"] - 1) * self._classes(per_class)

    def val_source_images(self, per_class: Mapping[str, int]) -> int:
        return per_class["train"] * self._classes(per_class)

    def split_options(self, **given: Any) -> dict[str, Any]:
        max_side = given.pop("max_side", None)
        options = super().split_options(**given)
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int)
                                     or max_side < 32):
            raise DatasetError(f"max_side must be an integer >= 32, got {max_side!r}")
        return {**options, "max_side": DEFAULT_MAX_SIDE if max_side is None else max_side}

    def option_schema(self) -> dict[str, dict]:
        return {**super().option_schema(), "max_side": {
            "type": "integer", "minimum": 32, "default": DEFAULT_MAX_SIDE,
            "description": "training images are stored with their longer side at most this "
            "(re-encoded JPEG, quality 90)"}}

    def fake_options(self, per_class: int | None = None) -> dict[str, Any]:
        """One validation image per class (the default 10 per class needs the real files)."""
        return {"val_size": FAKE_CLASSES}

    # --- reading ----------------------------------------------------------------------------

    def class_names(self, raw: Mapping[str, Path]) -> tuple[str, ...]:
        return read_devkit(raw[DEVKIT]).names

    def meta_fields(self, raw: Mapping[str, Path], options: Mapping[str, Any]) -> dict:
        return {"wnids": list(read_devkit(raw[DEVKIT]).wnids)}

    def write_prepared(self, raw: Mapping[str, Path], options: Mapping[str, Any], out_dir: Path,
                       *, split_seed: int, workers: int) -> dict:
        """The whole prepare (sdnet.data.prepare hands over): see the module docstring."""
        return _Preparer(self, raw, options, Path(out_dir), split_seed, workers).run()

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        """The three files in the real layout (see `write_fake_files`), in folder `out`."""
        if full_size:
            raise SdnetError("no full-size ImageNet fake (it would be 150 GB); use --per-class")
        sizes = self.fake_counts(per_class)
        write_fake_files(Path(out), FAKE_CLASSES, sizes["train"], sizes["val"], seed)
        return Path(out)


# --- the devkit -------------------------------------------------------------------------------

def _devkit_members(path: Path) -> dict[str, bytes]:
    from sdnet.data.archive import iter_files

    return dict(iter_files(path, lambda name: name in (META_MAT, GROUND_TRUTH)))


def read_devkit(path: Path) -> Devkit:
    """Classes and validation labels as torchvision's parse_devkit_archive reads them; one line
    naming the member for anything missing or inconsistent."""
    import numpy as np
    import scipy.io

    members = _devkit_members(path)
    for name in (META_MAT, GROUND_TRUTH):
        if name not in members:
            raise SdnetError(f"{path}: no member {name}; is it {DEVKIT}?")
    try:
        synsets = scipy.io.loadmat(io.BytesIO(members[META_MAT]), squeeze_me=True)["synsets"]
        rows = [tuple(row) for row in np.atleast_1d(synsets)]
        leaves = [(int(r[0]), str(r[1]), str(r[2])) for r in rows if int(r[4]) == 0]
    except (KeyError, ValueError, TypeError, IndexError, OSError) as err:
        raise SdnetError(f"{path}:{META_MAT}: not the devkit's synset table ({err})") from err
    if not leaves:
        raise SdnetError(f"{path}:{META_MAT}: no leaf synsets (num_children == 0)")
    wnids = sorted(wnid for _, wnid, _ in leaves)
    if len(set(wnids)) != len(wnids):
        raise SdnetError(f"{path}:{META_MAT}: a wnid is listed twice")
    label = {wnid: i for i, wnid in enumerate(wnids)}
    words = {wnid: text for _, wnid, text in leaves}
    by_id = {ilsvrc_id: label[wnid] for ilsvrc_id, wnid, _ in leaves}
    test_labels = []
    lines = members[GROUND_TRUTH].decode("ascii", errors="replace").split()
    for number, text in enumerate(lines, start=1):
        if not text.isdigit() or int(text) not in by_id:
            raise SdnetError(f"{path}:{GROUND_TRUTH} line {number}: {text!r} is no leaf's "
                             f"ILSVRC2012_ID of {META_MAT}")
        test_labels.append(by_id[int(text)])
    return Devkit(tuple(wnids), tuple(words[w].split(",")[0].strip() for w in wnids),
                  tuple(test_labels))


# --- decoding (the pool's tasks) --------------------------------------------------------------

def _open_rgb(data: bytes, name: str, source: str, draft: int | None = None) -> Any:
    """An RGB PIL image of a JPEG (or a PNG named .JPEG); greyscale and CMYK converted."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(data), formats=["JPEG", "PNG"])
        if draft is not None and im.format == "JPEG":
            im.draft("RGB", (draft, draft))  # DCT scaling: decodes big images at 1/2, 1/4 size
        return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, zlib.error) as err:
        raise SdnetError(f"{source}:{name}: not a readable JPEG or PNG ({err})") from err


def resize_shorter(im: Any, size: int) -> Any:
    """Shorter side to `size` (bicubic), as torchvision's Resize(size) rounds the other."""
    from PIL import Image

    w, h = im.size
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return im if new == (w, h) else im.resize(new, Image.Resampling.BICUBIC)


def eval_view(im: Any) -> np.ndarray:
    """fb.resnet.torch's evaluation view: shorter side 256 (bicubic), centre crop 224."""
    import numpy as np

    im = resize_shorter(im, EVAL_RESIZE)
    w, h = im.size
    left, top = round((w - CROP) / 2.0), round((h - CROP) / 2.0)
    return np.asarray(im.crop((left, top, left + CROP, top + CROP)))


def eval_chunk(chunk: list[tuple[str, bytes]], source: str) -> np.ndarray:
    """uint8 (N, 224, 224, 3) evaluation views of (member, bytes) pairs (a pool task)."""
    import numpy as np

    out = np.empty((len(chunk), CROP, CROP, 3), np.uint8)
    for i, (name, data) in enumerate(chunk):
        out[i] = eval_view(_open_rgb(data, name, source))
    return out


def train_chunk(chunk: list[tuple[str, bytes]], source: str, max_side: int
                ) -> list[tuple[bytes, int, int]]:
    """(re-encoded JPEG, height, width) of each training image: longer side at most
    `max_side` (bicubic), baseline RGB JPEG at quality 90 (a pool task)."""
    from PIL import Image

    out = []
    for name, data in chunk:
        im = _open_rgb(data, name, source, draft=max_side)
        w, h = im.size
        if max(w, h) > max_side:
            scale = max_side / max(w, h)
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                           Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=JPEG_QUALITY)
        out.append((buf.getvalue(), im.size[1], im.size[0]))
    return out


class _Runner:
    """Tasks in a process pool (or in this process for workers == 1), results in order."""

    def __init__(self, workers: int) -> None:
        from sdnet.data.common import process_pool

        self.workers = max(1, int(workers))
        self.pool = process_pool(self.workers) if self.workers > 1 else None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pool is None:
            return _Done(fn(*args))
        return self.pool.submit(fn, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def _split(items: list, parts: int) -> list[list]:
    size = max(1, -(-len(items) // max(1, parts)))
    return [items[i:i + size] for i in range(0, len(items), size)]


# --- the archives -----------------------------------------------------------------------------

def _check(member: tarfile.TarInfo, archive: Path) -> None:
    from sdnet.data.archive import check_member

    try:
        check_member(member)
    except tarfile.FilterError as err:
        raise SdnetError(f"{archive}: refused unsafe member {member.name!r} ({err})") from err


def _is_image(name: str) -> bool:
    return name.lower().endswith((".jpeg", ".jpg"))


def class_members(outer: tarfile.TarFile, archive: Path, wnid: str, label: int
                  ) -> list[tuple[str, bytes]]:
    """The (name, bytes) of class `wnid`'s images, by name, from its inner `<wnid>.tar`."""
    inner_name = f"{wnid}.tar"
    try:
        info = outer.getmember(inner_name)
    except KeyError:
        raise SdnetError(f"{archive}: no member {inner_name} (class {label} of the devkit); is "
                         f"it {TRAIN_TAR}?") from None
    _check(info, archive)
    members = []
    try:
        with tarfile.open(fileobj=outer.extractfile(info), mode="r|") as inner:
            for member in inner:
                _check(member, archive)
                if member.isreg() and _is_image(member.name):
                    members.append((member.name, inner.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise SdnetError(f"{archive}:{inner_name}: corrupt or truncated inner tar ({err})") from err
    if not members:
        raise SdnetError(f"{archive}:{inner_name}: no JPEG images for class {wnid}")
    return sorted(members)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except (tarfile.TarError, OSError) as err:
        raise SdnetError(f"{path}: not a readable (uncompressed) tar ({err}); is it "
                         f"{TRAIN_TAR}?") from err


_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")


def test_members(path: Path, expected: int) -> Iterator[tuple[int, str, bytes]]:
    """(number, member, bytes) of the validation tar's JPEGs in archive order; every
    ILSVRC2012_val_<number>.JPEG for number 1..expected (the ground truth's lines) exactly
    once, in whatever order the tar holds them."""
    from sdnet.data.archive import iter_files

    seen: set[int] = set()
    for name, data in iter_files(path, _is_image):
        match = _VAL_NAME.fullmatch(os.path.basename(name))
        number = int(match[1]) if match else 0
        if not 1 <= number <= expected or number in seen:
            raise SdnetError(f"{path}: member {name!r} is not one of ILSVRC2012_val_00000001"
                             f".JPEG ... {expected:08d}.JPEG (once each; {GROUND_TRUTH} labels "
                             f"{expected})")
        seen.add(number)
        yield number, name, data
    if len(seen) != expected:
        raise SdnetError(f"{path}: {len(seen)} validation images, but {GROUND_TRUTH} labels "
                         f"{expected}")


# --- the resumable prepare --------------------------------------------------------------------

def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_bytes(path, buf.getvalue())


class _Preparer:
    """One prepare: work folder `.<out>.partial` beside `out_dir`, one file pair per class and
    one file per test chunk (each written atomically, so a unit is either done or absent), then
    the assembled folder published atomically and the work folder removed."""

    def __init__(self, ds: ImageNet, raw: Mapping[str, Path], options: Mapping[str, Any],
                 out_dir: Path, split_seed: int, workers: int) -> None:
        self.ds, self.raw, self.out_dir = ds, raw, out_dir
        self.max_side = int(options["max_side"])
        self.val_size_option = options.get("val_size")
        self.split_seed = int(split_seed)
        self.workers = workers
        self.work = out_dir.parent / f".{out_dir.name}.partial"

    # The settings a work folder was made with: another setting or other files start over.
    def _identity(self, devkit: Devkit) -> dict:
        files = {name: [p.stat().st_size, int(p.stat().st_mtime)] for name, p in self.raw.items()}
        return {"version": WORK_VERSION, "files": files, "max_side": self.max_side,
                "val_size": self.val_size, "split_seed": self.split_seed,
                "wnids": list(devkit.wnids)}

    def _open_work(self, devkit: Devkit) -> None:
        identity = self._identity(devkit)
        marker = self.work / "work.json"
        if self.work.is_dir():
            try:
                same = json.loads(marker.read_text()) == identity
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.work)
        (self.work / "train").mkdir(parents=True, exist_ok=True)
        (self.work / "test").mkdir(exist_ok=True)
        _atomic_bytes(marker, json.dumps(identity).encode())

    def _val_take(self, num_classes: int) -> np.ndarray:
        """Validation images per class: val_size // C each, one more for val_size % C classes
        drawn by a generator seeded with split_seed (each class's own draw: below)."""
        import numpy as np

        rng = np.random.default_rng(self.split_seed)
        take = np.full(num_classes, self.val_size // num_classes)
        take[rng.choice(num_classes, self.val_size % num_classes, replace=False)] += 1
        return take

    def run(self) -> dict:
        devkit = read_devkit(self.raw[DEVKIT])
        num_classes = len(devkit.wnids)
        self.val_size = (DEFAULT_VAL_PER_CLASS * num_classes if self.val_size_option is None
                         else int(self.val_size_option))
        self._open_work(devkit)
        runner = _Runner(self.workers)
        try:
            self._train(devkit, self._val_take(num_classes), runner)
            self._test(devkit, runner)
        finally:
            runner.close()
        meta = self._assemble(devkit)
        shutil.rmtree(self.work, ignore_errors=True)
        return meta

    def _class_files(self, label: int) -> tuple[Path, Path]:
        return (self.work / "train" / f"{label:05d}.jpegs",
                self.work / "train" / f"{label:05d}.npz")

    def _train(self, devkit: Devkit, take: np.ndarray, runner: _Runner) -> None:
        """Each class not yet done: its images read from the inner tar, the held-out ones
        decoded to their evaluation view, the rest re-encoded; two classes in flight."""
        import numpy as np

        archive = self.raw[TRAIN_TAR]
        source = str(archive)
        pending: deque = deque()
        with _open_tar(archive) as outer:
            for label, wnid in enumerate(devkit.wnids):
                if self._class_files(label)[1].is_file():
                    continue
                members = class_members(outer, archive, wnid, label)
                n = len(members)
                if take[label] >= n:
                    raise SdnetError(f"val_size {self.val_size} takes {take[label]} images of "
                                     f"class {wnid}, which has {n}: every class must keep a "
                                     "training image")
                rng = np.random.default_rng([self.split_seed, label])
                held = set(rng.choice(n, int(take[label]), replace=False).tolist())
                val = [m for i, m in enumerate(members) if i in held]
                train = [m for i, m in enumerate(members) if i not in held]
                parts = runner.workers
                futures = [runner.submit(train_chunk, c, source, self.max_side)
                           for c in _split(train, parts)]
                val_future = runner.submit(eval_chunk, val, source) if val else None
                pending.append((label, futures, val_future))
                if len(pending) > 1:
                    self._finish_class(*pending.popleft())
            while pending:
                self._finish_class(*pending.popleft())

    def _finish_class(self, label: int, futures: list, val_future: Any) -> None:
        import numpy as np

        encoded = [item for future in futures for item in future.result()]
        val = (val_future.result() if val_future is not None
               else np.empty((0, CROP, CROP, 3), np.uint8))
        data_path, index_path = self._class_files(label)
        _atomic_bytes(data_path, b"".join(jpeg for jpeg, _, _ in encoded))
        _save_npz(index_path,  # last: its presence marks the class done
                  lengths=np.array([len(j) for j, _, _ in encoded], np.int64),
                  heights=np.array([h for _, h, _ in encoded], np.int32),
                  widths=np.array([w for _, _, w in encoded], np.int32), val=val)

    def _test(self, devkit: Devkit, runner: _Runner) -> None:
        """The official validation images, TEST_CHUNK at a time in archive order (each chunk
        file keeps the images' numbers), chunks not yet done decoded."""
        archive = self.raw[VAL_TAR]
        chunk: list[tuple[str, bytes]] = []
        numbers: list[int] = []
        pending: deque = deque()
        index = 0

        def flush() -> None:
            nonlocal chunk, numbers, index
            path = self.work / "test" / f"{index:05d}.npz"
            if chunk and not path.is_file():
                pending.append((path, numbers, runner.submit(eval_chunk, chunk, str(archive))))
            chunk, numbers, index = [], [], index + 1
            while len(pending) > 2 * runner.workers:
                self._finish_test(*pending.popleft())

        for number, name, data in test_members(archive, len(devkit.test_labels)):
            chunk.append((name, data))
            numbers.append(number)
            if len(chunk) == TEST_CHUNK:
                flush()
        flush()
        while pending:
            self._finish_test(*pending.popleft())

    @staticmethod
    def _finish_test(path: Path, numbers: list[int], future: Any) -> None:
        import numpy as np

        _save_npz(path, images=future.result(), numbers=np.array(numbers, np.int64))

    def _assemble(self, devkit: Devkit) -> dict:
        """train.jpegs + train.npz, val.npz, test.npz and meta.json into a staging folder,
        renamed into place (sdnet.data.prepare's publish)."""
        import numpy as np

        from sdnet.data.common import FORMAT_VERSION
        from sdnet.data.download import md5_of
        from sdnet.data.prepare import _publish
        from sdnet.data.prepared import write_meta, write_split

        num_classes = len(devkit.wnids)
        out_dir = self.out_dir
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        try:
            staging.chmod(0o755)
            lengths, heights, widths, labels, vals, val_labels = [], [], [], [], [], []
            with open(staging / "train.jpegs", "wb") as out:
                for label in range(num_classes):
                    data_path, index_path = self._class_files(label)
                    with np.load(index_path) as index:
                        lengths.append(index["lengths"])
                        heights.append(index["heights"])
                        widths.append(index["widths"])
                        vals.append(index["val"])
                    with open(data_path, "rb") as fh:
                        shutil.copyfileobj(fh, out, 1 << 24)
                    labels.append(np.full(len(lengths[-1]), label, np.int64))
                    val_labels.append(np.full(len(vals[-1]), label, np.int64))
            length = np.concatenate(lengths)
            offsets = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
            train_labels = np.concatenate(labels)
            _save_npz(staging / "train.npz", offsets=offsets, lengths=length,
                      heights=np.concatenate(heights), widths=np.concatenate(widths),
                      labels=train_labels)
            parts = []
            for path in sorted((self.work / "test").glob("*.npz")):
                with np.load(path) as part:
                    parts.append((part["images"], part["numbers"]))
            order = np.argsort(np.concatenate([n for _, n in parts]), kind="stable")
            test = np.concatenate([images for images, _ in parts])[order]  # by image number
            write_split(staging / "test.npz", test, np.array(devkit.test_labels, np.int64),
                        num_classes, CROP)
            del test
            val = np.concatenate(vals)
            if len(val):
                write_split(staging / "val.npz", val, np.concatenate(val_labels), num_classes,
                            CROP)
            counts_ = {"train": len(train_labels), **({"val": len(val)} if len(val) else {}),
                       "test": len(devkit.test_labels)}
            meta = {"dataset": self.ds.name, "classes": list(devkit.names),
                    "num_classes": num_classes, "image_size": CROP, "counts": counts_,
                    "mean": list(MEAN), "std": list(STD),
                    "source_md5": {name: md5_of(path) for name, path in self.raw.items()},
                    "val_size": len(val), "split_seed": self.split_seed,
                    "wnids": list(devkit.wnids), "max_side": self.max_side,
                    "jpeg_quality": JPEG_QUALITY, "train_format": TRAIN_FORMAT,
                    "format_version": FORMAT_VERSION}
            write_meta(staging / "meta.json", meta)
            _publish(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return meta


# --- the fake ---------------------------------------------------------------------------------

def fake_wnids(num_classes: int) -> list[str]:
    """WordNet-like ids in sorted order = label order."""
    return [f"n{1_440_000 + 7_919 * i:08d}" for i in range(num_classes)]


def _fake_meta_mat(wnids: list[str]) -> bytes:
    """meta.mat as the devkit has it: leaves with ILSVRC2012_IDs 1..C NOT in sorted-wnid order
    (here reversed), then two non-leaf synsets (num_children > 0) that must be ignored."""
    import numpy as np
    import scipy.io

    from sdnet.data.fake import MAT_HEADER

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    c = len(wnids)
    rows = [(c - i, wnid, f"fake class {i}, fake synonym {i}", "a fake synset", 0,
             np.zeros((1, 0)), 0, 10) for i, wnid in enumerate(wnids)]
    rows.sort(key=lambda row: row[0])  # the file lists synsets by ID
    rows += [(c + 1, "n00001740", "entity", "the root", 2, np.array([[1, 2]]), 18, 0),
             (c + 2, "n00002137", "abstraction", "a non-leaf", 1, np.array([[3]]), 17, 0)]
    table = np.empty((len(rows), 1), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        table[i, 0] = row
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": table}, format="5")
    data = bytearray(buf.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b" ")
    return bytes(data)


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    from sdnet.data.fake import _tarinfo

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in members:
            tar.addfile(_tarinfo(name, len(payload)), io.BytesIO(payload))
    return buf.getvalue()


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    from sdnet.atomic import atomic_open

    with atomic_open(path, "wb") as fh:
        fh.write(_tar_bytes(members))


def _fake_jpegs(labels: np.ndarray, rng: np.random.Generator, quirks: Mapping[int, str]
                ) -> list[bytes]:
    """One file per label: class patterns at random sizes (72-160 px a side); quirks: index ->
    'png' (a PNG, to be named .JPEG), 'cmyk' (a CMYK JPEG); every fifth is greyscale."""
    from PIL import Image

    from sdnet.data.fake import fake_images

    images = fake_images(labels, rng, size=96)
    sizes = rng.integers(72, 161, (len(labels), 2))
    out = []
    for i, (image, (w, h)) in enumerate(zip(images, sizes)):
        im = Image.fromarray(image, "RGB").resize((int(w), int(h)), Image.Resampling.BILINEAR)
        kind = quirks.get(i, "L" if i % 5 == 3 else "RGB")
        buf = io.BytesIO()
        if kind == "png":
            im.save(buf, format="PNG", compress_level=1)
        else:
            im.convert({"cmyk": "CMYK"}.get(kind, kind)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write_fake_files(out: Path, num_classes: int, train_per_class: int, val_per_class: int,
                     seed: int = 0) -> None:
    """The three official files in their real layout, in folder `out`: the train tar of inner
    `<wnid>.tar`s, the flat val tar, the devkit tar.gz (meta.mat written by scipy, IDs not in
    sorted-wnid order, and the ground truth). One training image is a PNG named .JPEG, one
    training and one validation image a CMYK JPEG, every fifth image greyscale. Byte-
    reproducible for a seed."""
    import numpy as np

    from sdnet.data.fake import balanced_labels, write_tar_gz

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wnids = fake_wnids(num_classes)
    train_labels = np.repeat(np.arange(num_classes), train_per_class)
    quirks = {1: "png", train_per_class + 2: "cmyk"}  # class 0's second, class 1's third
    jpegs = _fake_jpegs(train_labels, rng, quirks)
    inner = []
    for c, wnid in enumerate(wnids):
        files = [(f"{wnid}_{k + 1}.JPEG", jpegs[c * train_per_class + k])
                 for k in range(train_per_class)]
        inner.append((f"{wnid}.tar", _tar_bytes(files)))
    _write_tar(out / TRAIN_TAR, inner)
    val_labels = balanced_labels(val_per_class, rng, num_classes)
    val_jpegs = _fake_jpegs(val_labels, rng, {0: "cmyk"})
    _write_tar(out / VAL_TAR, [(f"ILSVRC2012_val_{j + 1:08d}.JPEG", data)
                               for j, data in enumerate(val_jpegs)])
    ids = [num_classes - int(label) for label in val_labels]  # the fake's ID of each class
    write_tar_gz(out / DEVKIT, [
        (DEVKIT_ROOT, None), (f"{DEVKIT_ROOT}/data", None),
        (GROUND_TRUTH, "".join(f"{i}\n" for i in ids).encode()),
        (META_MAT, _fake_meta_mat(wnids)),
        (f"{DEVKIT_ROOT}/readme.txt", b"fake ILSVRC2012 devkit (sdnet data fake)\n"),
    ])


register_dataset(ImageNet())
