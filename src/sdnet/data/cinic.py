"""CINIC-10: a tar of train/, valid/, test/ folders of 10 class folders of 32x32 PNGs.

The archive is read as one stream (writing 270,000 small files to disk costs minutes); PNGs are
decoded by a process pool while the stream is still being read (sdnet.data.images), greyscale
and palette PNGs converted to RGB. Images are ordered by class (CIFAR-10's order) and file
name, so the same archive always gives the same bytes. Validation: the shipped valid/ split,
or a seeded subset of it (`val_size`).

Importing this module is light (the registry reads the facts); reading and faking import numpy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.cifar import CIFAR10_CLASSES
from sdnet.data.registry import Dataset, RawFile, counts, register_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    import numpy as np

    from sdnet.data.prepared import Split

CINIC_SPLITS = {"train": "train", "val": "valid", "test": "test"}  # ours -> its folder


def _cinic_key(name: str) -> tuple[str, str, str] | None:
    """(split, class, file) of a .../<split>/<class>/<file>.png member, else None."""
    parts = name.split("/")
    if len(parts) < 3 or parts[-3] not in CINIC_SPLITS.values():
        return None
    return (parts[-3], parts[-2], parts[-1]) if parts[-1].lower().endswith(".png") else None


class CINIC10(Dataset):
    name = "cinic10"
    title = "CINIC-10"
    files = (RawFile("CINIC-10.tar.gz",
                     "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
                     # Listed by third-party code, not confirmed against the official page:
                     # pass --md5 (config: md5) or set SDNET_CINIC10_MD5 if the archive differs.
                     os.environ.get("SDNET_CINIC10_MD5", "6ee4d0c996905fe93221de577967a372")),)
    num_classes = 10
    classes = CIFAR10_CLASSES
    image_size = 32
    fake_per_class = counts(train=20, valid=20, test=20)
    real_per_class = counts(train=9000, valid=9000, test=9000)

    def val_limit(self, per_class: Mapping[str, int]) -> int:
        """val_size subsamples the shipped valid split: at most all of it."""
        return per_class["valid"] * self.num_classes

    def val_source_images(self, per_class: Mapping[str, int]) -> int:
        return per_class["valid"] * self.num_classes

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict[str, Split]:
        """Its shipped splits; val: all of valid/, a seeded subset of `val_size`, or none (0)."""
        from sdnet.data.archive import iter_files
        from sdnet.data.images import decode_members

        archive = raw[self.files[0].name]
        val_size = options.get("val_size")
        wanted = {k: v for k, v in CINIC_SPLITS.items() if not (k == "val" and val_size == 0)}
        folders = set(wanted.values())

        def keep(name: str) -> bool:
            key = _cinic_key(name)
            return key is not None and key[0] in folders

        names, images = decode_members(iter_files(archive, keep), fmt="PNG", size=32,
                                       workers=workers, source=str(archive))
        if not names:
            raise SdnetError(f"{archive}: no train/, valid/, test/ PNG files; is it "
                             f"{self.files[0].name}?")
        splits = {key: _sorted_split(archive, folder, names, images)
                  for key, folder in wanted.items()}
        if "val" in splits and val_size is not None:
            splits["val"] = _subsample(splits["val"], val_size, split_seed)
        return splits

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        from sdnet.data.common import default_workers
        from sdnet.data.fake import write_tar_gz

        sizes = self.fake_counts(per_class, full_size)
        big = sizes["train"] * 30 >= 20_000  # a pool pays off for full-size fakes only
        return write_tar_gz(out, _fake_members(sizes, seed, default_workers() if big else 1))


def _sorted_split(archive: Path, split: str, names: list[str], images: np.ndarray) -> Split:
    """One split's images in a fixed order: CIFAR-10 class order, then file name."""
    import numpy as np

    keys = [(i, _cinic_key(name)) for i, name in enumerate(names)]
    keys = [(i, k) for i, k in keys if k is not None and k[0] == split]
    found = sorted({k[1] for _, k in keys})
    if found != sorted(CIFAR10_CLASSES):
        raise SdnetError(f"{archive}: {split}/ has class folders {found}, expected the 10 "
                         f"CIFAR-10 classes {sorted(CIFAR10_CLASSES)}")
    order = sorted(keys, key=lambda ik: (CIFAR10_CLASSES.index(ik[1][1]), ik[1][2]))
    files = [k for _, k in order]
    if len(set(files)) != len(files):
        raise SdnetError(f"{archive}: {split}/ lists some files twice")
    idx = np.array([i for i, _ in order])
    labels = np.array([CIFAR10_CLASSES.index(k[1]) for _, k in order], dtype=np.int64)
    return images[idx], labels


def _subsample(split: Split, size: int, seed: int) -> Split:
    """A seeded subset of CINIC-10's shipped valid split (a smaller, faster validation set)."""
    import numpy as np

    images, labels = split
    if size > len(labels):
        raise SdnetError(f"val_size {size} exceeds the {len(labels)} images of CINIC-10's "
                         "valid split")
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:size])
    return images[idx], labels[idx]


def _fake_members(sizes: Mapping[str, int], seed: int,
                  workers: int) -> Iterator[tuple[str, bytes | None]]:
    """README, then train/, valid/, test/: class folders of PNGs, some greyscale or palette."""
    import contextlib

    import numpy as np

    from sdnet.data.common import process_pool
    from sdnet.data.fake import chunked_images, image_mode
    from sdnet.data.images import encode_chunk

    rng = np.random.default_rng(seed)
    yield "README.md", b"Fake CINIC-10 written by `sdnet data fake` (not real images).\n"
    with process_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for split in ("train", "valid", "test"):
            per_class = sizes[split]
            labels = np.repeat(np.arange(len(CIFAR10_CLASSES)), per_class)
            images = chunked_images(labels, rng)
            modes = [image_mode(i) for i in range(len(labels))]
            chunks = [(images[i:i + 2000], modes[i:i + 2000], "PNG")
                      for i in range(0, len(labels), 2000)]
            encoded = pool.map(encode_chunk, chunks) if pool else map(encode_chunk, chunks)
            yield split, None
            pngs = (png for chunk in encoded for png in chunk)  # written while later ones encode
            for k, png in enumerate(pngs):
                c, i = divmod(k, per_class)
                if i == 0:
                    yield f"{split}/{CIFAR10_CLASSES[c]}", None
                yield f"{split}/{CIFAR10_CLASSES[c]}/fake-{split}-{k:06d}.png", png


register_dataset(CINIC10())
