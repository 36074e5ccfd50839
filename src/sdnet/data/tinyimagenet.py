"""Tiny ImageNet (Stanford CS231n): 200 ImageNet classes of 64x64 JPEGs in one zip.

tiny-imagenet-200.zip holds, under `tiny-imagenet-200/`: `wnids.txt` (the 200 WordNet ids),
`words.txt` (wnid -> names, for all of ImageNet), `train/<wnid>/images/<wnid>_<i>.JPEG` (500
per class, with `train/<wnid>/<wnid>_boxes.txt`), `val/images/val_<i>.JPEG` labelled by
`val/val_annotations.txt` (tab-separated: file, wnid, 4 box ints; 50 per class) and
`test/images/*.JPEG` (unlabelled, ignored). Some JPEGs are greyscale: converted to RGB.

Splits: test = the official val (its labels are public, the test set's are not); val = a seeded,
stratified `val_size` subset of train (default a tenth: 10,000 = 50 per class, the size of the
test set); train = the rest. Classes are in sorted-wnid order (what torchvision's ImageFolder
gives the train/ folders); meta.json's "classes" are the first names words.txt gives each wnid,
"wnids" the ids in the same order.

The zip is read member by member into memory (never extracted); the JPEGs are decoded by the
process pool of sdnet.data.images while the zip is still being read. Importing this module is
light (the registry reads the facts); reading and faking import numpy and PIL.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.registry import Dataset, RawFile, counts, register_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    import numpy as np

    from sdnet.data.prepared import Split

ROOT = "tiny-imagenet-200"
_TRAIN_IMAGE = re.compile(rf"{ROOT}/train/([^/]+)/images/([^/]+\.jpe?g)", re.IGNORECASE)
_VAL_IMAGE = re.compile(rf"{ROOT}/val/images/([^/]+\.jpe?g)", re.IGNORECASE)
FAKE_TEST_IMAGES = 10  # test/ of a small fake (unlabelled, never read); the real one has 10,000


@dataclass(frozen=True)
class Layout:
    """What the zip holds: classes in label order and the labelled JPEG members."""

    wnids: tuple[str, ...]               # sorted: label order
    names: tuple[str, ...]               # each wnid's first name in words.txt
    train: tuple[tuple[str, int], ...]   # (member, label), by label then file name
    val: tuple[tuple[str, int], ...]     # the official val (our test), by file name


class TinyImageNet(Dataset):
    name = "tinyimagenet"
    title = "Tiny ImageNet"
    files = (RawFile("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                     # The md5 third-party loaders use (not published with the zip): override it
                     # with --md5 or the config's md5 if the archive differs.
                     "90528d7ca1a48142e341f4ef8d21d0de"),)
    num_classes = 200
    classes = None  # from wnids.txt and words.txt
    image_size = 64
    augment = True  # pad 4 + random 64x64 crop + flip, as for CIFAR
    fake_per_class = counts(train=10, val=5)  # "val": the zip's val/ folder (our test split)
    real_per_class = counts(train=500, val=50)

    def val_limit(self, per_class: Mapping[str, int]) -> int:
        """Stratified: every class keeps at least one training image."""
        return (per_class["train"] - 1) * self.num_classes

    def class_names(self, raw: Mapping[str, Path]) -> tuple[str, ...]:
        archive = raw[self.files[0].name]
        with _open(archive) as zf:
            return _layout(zf, archive, self.num_classes, images=False).names

    def meta_fields(self, raw: Mapping[str, Path], options: Mapping[str, Any]) -> dict:
        archive = raw[self.files[0].name]
        with _open(archive) as zf:
            return {"wnids": list(_layout(zf, archive, self.num_classes, images=False).wnids)}

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict[str, Split]:
        import numpy as np

        from sdnet.data.images import decode_members

        archive = raw[self.files[0].name]
        parts = {}
        with _open(archive) as zf:
            layout = _layout(zf, archive, self.num_classes)
            for split, members in (("train", layout.train), ("test", layout.val)):
                _, images = decode_members(_members(zf, archive, members), fmt="JPEG",
                                           size=self.image_size, workers=workers,
                                           source=str(archive))
                parts[split] = images, np.array([label for _, label in members], np.int64)
        train = parts["train"]
        val_size = options.get("val_size")
        val_size = len(train[1]) // 10 if val_size is None else val_size
        train, val = hold_out_per_class(train, val_size, split_seed, self.num_classes)
        return {"train": train, **({"val": val} if val is not None else {}),
                "test": parts["test"]}

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        """A zip with the real member names: wnids.txt (in no particular order, as the real
        one), words.txt (the fake's wnids and a few others), train/ with boxes, val/ with its
        annotations, test/; some JPEGs greyscale. Default: 10 train and 5 val images a class."""
        from sdnet.data.fake import write_zip

        sizes = self.fake_counts(per_class, full_size)
        test_images = 10_000 if full_size else FAKE_TEST_IMAGES
        return write_zip(out, _fake_members(self.num_classes, sizes["train"], sizes["val"],
                                            test_images, seed))


# --- reading --------------------------------------------------------------------------------

def _open(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise SdnetError(f"{archive}: not a readable zip archive ({err}); is it "
                         f"{TinyImageNet.files[0].name}?") from err


def _text(zf: zipfile.ZipFile, archive: Path, name: str) -> str:
    if name not in zf.NameToInfo:
        raise SdnetError(f"{archive}: no {name}; is it {TinyImageNet.files[0].name}?")
    return _read(zf, archive, name).decode("utf-8", errors="replace")


def _read(zf: zipfile.ZipFile, archive: Path, name: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise SdnetError(f"{archive}:{name}: corrupt member ({err})") from err


def _members(zf: zipfile.ZipFile, archive: Path, members: tuple[tuple[str, int], ...]
             ) -> Iterator[tuple[str, bytes]]:
    for name, _ in members:
        yield name, _read(zf, archive, name)


def _layout(zf: zipfile.ZipFile, archive: Path, num_classes: int, images: bool = True
            ) -> Layout:
    """The classes (wnids.txt, words.txt) and, with `images`, the labelled JPEGs; one line
    naming the archive, the member and the wnid for anything missing or inconsistent."""
    wnids_file = f"{ROOT}/wnids.txt"
    listed = [line.strip() for line in _text(zf, archive, wnids_file).splitlines() if line.strip()]
    wnids = tuple(sorted(set(listed)))
    if len(listed) != num_classes or len(wnids) != num_classes:
        raise SdnetError(f"{archive}:{wnids_file}: {len(listed)} lines, {len(wnids)} distinct "
                         f"wnids; expected {num_classes} classes")
    words = {}
    for line in _text(zf, archive, f"{ROOT}/words.txt").splitlines():
        wnid, _, text = line.partition("\t")
        words[wnid.strip()] = text
    missing = [w for w in wnids if not words.get(w, "").strip()]
    if missing:
        raise SdnetError(f"{archive}:{ROOT}/words.txt: no name for wnid {missing[0]} (of "
                         f"{len(missing)} listed in wnids.txt)")
    names = tuple(words[w].split(",")[0].strip() for w in wnids)
    if not images:
        return Layout(wnids, names, (), ())
    label = {wnid: i for i, wnid in enumerate(wnids)}
    return Layout(wnids, names, _train(zf, archive, label), _val(zf, archive, label))


def _train(zf: zipfile.ZipFile, archive: Path, label: Mapping[str, int]
           ) -> tuple[tuple[str, int], ...]:
    per_class: dict[str, list[str]] = {wnid: [] for wnid in label}
    for name in zf.namelist():
        match = _TRAIN_IMAGE.fullmatch(name)
        if match is None:
            continue
        if match[1] not in label:
            raise SdnetError(f"{archive}: {ROOT}/train/{match[1]}/ is not a class of "
                             f"{ROOT}/wnids.txt")
        per_class[match[1]].append(name)
    for wnid, members in per_class.items():
        if not members:
            raise SdnetError(f"{archive}: no class folder {ROOT}/train/{wnid}/images/ (no JPEGs) "
                             f"for wnid {wnid} of {ROOT}/wnids.txt")
    return tuple((name, label[wnid]) for wnid in sorted(per_class)
                 for name in sorted(per_class[wnid]))


def _val(zf: zipfile.ZipFile, archive: Path, label: Mapping[str, int]
         ) -> tuple[tuple[str, int], ...]:
    annotations = f"{ROOT}/val/val_annotations.txt"
    labelled: dict[str, int] = {}
    for number, line in enumerate(_text(zf, archive, annotations).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        file, wnid = fields[0].strip(), fields[1].strip() if len(fields) > 1 else ""
        if wnid not in label:
            raise SdnetError(f"{archive}:{annotations} line {number}: wnid {wnid!r} of {file} "
                             f"is not a class of {ROOT}/wnids.txt")
        member = f"{ROOT}/val/images/{file}"
        if member in labelled:
            raise SdnetError(f"{archive}:{annotations} line {number}: {file} is labelled twice")
        if member not in zf.NameToInfo:
            raise SdnetError(f"{archive}: no {member} (labelled {wnid} in {annotations} line "
                             f"{number})")
        labelled[member] = label[wnid]
    unlabelled = [n for n in zf.namelist() if _VAL_IMAGE.fullmatch(n) and n not in labelled]
    if unlabelled:
        raise SdnetError(f"{archive}: {unlabelled[0]} has no line in {annotations}")
    if not labelled:
        raise SdnetError(f"{archive}: {annotations} labels no image")
    return tuple(sorted(labelled.items()))


def hold_out_per_class(train: Split, val_size: int, seed: int, num_classes: int
                       ) -> tuple[Split, Split | None]:
    """Hold out `val_size` training images, stratified: val_size // C of every class, and one
    more of val_size % C classes, all drawn by a generator seeded with `seed`; each class keeps
    at least one training image. Both parts stay in their original order."""
    import numpy as np

    images, labels = train
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    limit = sum(len(idx) - 1 for idx in by_class if len(idx))
    if not 0 <= val_size <= limit:
        raise SdnetError(f"val_size must be in 0..{limit} (every class keeps a training image) "
                         f"for {len(labels)} training images of {num_classes} classes, got "
                         f"{val_size}")
    if val_size == 0:
        return train, None
    rng = np.random.default_rng(seed)
    take = np.full(num_classes, val_size // num_classes)
    take[rng.choice(num_classes, val_size % num_classes, replace=False)] += 1
    short = [c for c in range(num_classes) if take[c] >= len(by_class[c])]
    if short:
        raise SdnetError(f"val_size {val_size} takes {take[short[0]]} images of class "
                         f"{short[0]}, which has {len(by_class[short[0]])}: every class must "
                         "keep a training image")
    val_idx = np.sort(np.concatenate([rng.choice(idx, size=n, replace=False)
                                      for idx, n in zip(by_class, take)]))
    keep = np.ones(len(labels), bool)
    keep[val_idx] = False
    return (images[keep], labels[keep]), (images[val_idx], labels[val_idx])


# --- the fake -------------------------------------------------------------------------------

def fake_wnids(num_classes: int) -> list[str]:
    """WordNet-like ids, increasing with the class index (so sorted order = label order)."""
    return [f"n{10_000_000 + 7_919 * i:08d}" for i in range(num_classes)]


def _fake_members(num_classes: int, train_per_class: int, val_per_class: int,
                  test_images: int, seed: int) -> Iterator[tuple[str, bytes | None]]:
    import contextlib

    import numpy as np

    from sdnet.data.common import default_workers, process_pool
    from sdnet.data.fake import balanced_labels, chunked_images, image_mode
    from sdnet.data.images import encode_chunk

    rng = np.random.default_rng(seed)
    wnids = fake_wnids(num_classes)
    others = [f"n{9_000_000 + i:08d}" for i in range(5)]  # words.txt covers all of ImageNet
    words = sorted([(w, f"fake class {i:03d}, fake synonym {i:03d}") for i, w in enumerate(wnids)]
                   + [(w, f"unused class {i}") for i, w in enumerate(others)])
    total = num_classes * (train_per_class + val_per_class) + test_images
    big = total >= 20_000  # a pool pays off for full-size fakes only
    with process_pool(default_workers()) if big else contextlib.nullcontext() as pool:

        def jpegs(labels: np.ndarray) -> Iterator[bytes]:
            images = chunked_images(labels, rng, size=64)
            modes = ["L" if image_mode(i) == "L" else "RGB" for i in range(len(labels))]
            chunks = [(images[i:i + 2000], modes[i:i + 2000], "JPEG")
                      for i in range(0, len(labels), 2000)]
            encoded = pool.map(encode_chunk, chunks) if pool else map(encode_chunk, chunks)
            return (jpeg for chunk in encoded for jpeg in chunk)

        def box() -> str:
            x0, y0 = rng.integers(0, 32, 2)
            x1, y1 = rng.integers(32, 64, 2)
            return f"{x0}\t{y0}\t{x1}\t{y1}"

        yield f"{ROOT}", None
        yield f"{ROOT}/wnids.txt", "".join(f"{wnids[i]}\n" for i in rng.permutation(
            num_classes)).encode()
        yield f"{ROOT}/words.txt", "".join(f"{w}\t{text}\n" for w, text in words).encode()
        yield f"{ROOT}/train", None
        train_labels = np.repeat(np.arange(num_classes), train_per_class)
        train_jpegs = jpegs(train_labels)
        for c, wnid in enumerate(wnids):
            files = [f"{wnid}_{i}.JPEG" for i in range(train_per_class)]
            yield f"{ROOT}/train/{wnid}", None
            yield (f"{ROOT}/train/{wnid}/{wnid}_boxes.txt",
                   "".join(f"{file}\t{box()}\n" for file in files).encode())
            yield f"{ROOT}/train/{wnid}/images", None
            for file in files:
                yield f"{ROOT}/train/{wnid}/images/{file}", next(train_jpegs)
        val_labels = balanced_labels(val_per_class, rng, num_classes)
        yield f"{ROOT}/val", None
        yield (f"{ROOT}/val/val_annotations.txt",
               "".join(f"val_{j}.JPEG\t{wnids[c]}\t{box()}\n"
                       for j, c in enumerate(val_labels)).encode())
        yield f"{ROOT}/val/images", None
        for j, jpeg in enumerate(jpegs(val_labels)):
            yield f"{ROOT}/val/images/val_{j}.JPEG", jpeg
        yield f"{ROOT}/test", None
        yield f"{ROOT}/test/images", None
        for j, jpeg in enumerate(jpegs(rng.integers(0, num_classes, test_images))):
            yield f"{ROOT}/test/images/test_{j}.JPEG", jpeg


register_dataset(TinyImageNet())
