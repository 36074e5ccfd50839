"""CIFAR-10 and CIFAR-100: python archives of Python 2 pickles of (N, 3072) uint8 rows.

cifar-10-python.tar.gz: `cifar-10-batches-py/data_batch_1..5`, `test_batch` (`labels`) and
`batches.meta` (`label_names`). cifar-100-python.tar.gz: `cifar-100-python/train`, `test`
(`fine_labels`, `coarse_labels`) and `meta` (`fine_label_names`, `coarse_label_names`); sdnet
trains on the 100 fine labels. Both hold out a seeded validation subset of the training images
(default a tenth: the paper's 45k/5k). As in torchvision, CIFAR100 subclasses CIFAR10.

Importing this module is light (the registry reads the facts); reading and faking import numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.registry import Dataset, RawFile, counts, register_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    import numpy as np

    from sdnet.data.prepared import Split

# CIFAR-10's class order; CINIC-10 labels are mapped onto it.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# CIFAR-100's `meta` file: fine_label_names (the 100 training classes) and coarse_label_names.
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)
# CIFAR-100's fine -> coarse (superclass) label map, for the fake's coarse_labels.
CIFAR100_COARSE_OF_FINE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
Members = Iterator[tuple[str, "bytes | None"]]


class CIFAR10(Dataset):
    name = "cifar10"
    title = "CIFAR-10"
    files = (RawFile("cifar-10-python.tar.gz",
                     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     "c58f30108f718f92721af3b95e74349a"),)
    num_classes = 10
    classes = CIFAR10_CLASSES
    image_size = 32
    fake_per_class = counts(train=60, test=20)
    real_per_class = counts(train=5000, test=1000)
    # Inside the archive: a folder, the training members, the test member, the meta member.
    folder_name = "cifar-10-batches-py"
    train_members = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_member = "test_batch"
    meta_member = "batches.meta"
    label_key = "labels"
    names_key = "label_names"

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict[str, Split]:
        """Train (batches in order) less a seeded `val_size` subset (default a tenth), test."""
        import numpy as np

        archive = raw[self.files[0].name]
        members = self._members(archive)
        meta_name = f"{archive}:{self.folder_name}/{self.meta_member}"
        _check_names(members[self.meta_member], meta_name, self.names_key, self.classes)
        parts = [self._batch(members[n], f"{archive}:{self.folder_name}/{n}")
                 for n in self.train_members]
        train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        test = self._batch(members[self.test_member],
                           f"{archive}:{self.folder_name}/{self.test_member}")
        val_size = options.get("val_size")
        train, val = split_off_val(train, len(train[1]) // 10 if val_size is None else val_size,
                                   split_seed)
        return {"train": train, **({"val": val} if val is not None else {}), "test": test}

    def _members(self, archive: Path) -> dict[str, bytes]:
        """The wanted members of the archive by name; one line naming what is missing."""
        from sdnet.data.archive import iter_files

        names = (*self.train_members, self.test_member, self.meta_member)
        wanted = {f"{self.folder_name}/{n}" for n in names}
        found = {name.removeprefix("./"): data for name, data in
                 iter_files(archive, lambda name: name.removeprefix("./") in wanted)}
        missing = sorted(wanted - set(found))
        if missing:
            raise SdnetError(f"{archive}: missing {', '.join(missing)}; is it "
                             f"{self.files[0].name}?")
        return {name: found[f"{self.folder_name}/{name}"] for name in names}

    def _batch(self, data: bytes, name: str) -> Split:
        """(images NHWC, labels) of one pickled batch; SdnetError naming `name` if malformed."""
        import numpy as np

        from sdnet.data.archive import as_uint8, load_pickle
        from sdnet.data.prepared import check_split

        batch = load_pickle(data, name)
        if "data" not in batch or self.label_key not in batch:
            raise SdnetError(f"{name}: no 'data'/{self.label_key!r} entries; is this a CIFAR "
                             "batch?")
        pixels = as_uint8(batch["data"], name, "data")
        if pixels.ndim != 2 or pixels.shape[1] != 3072:
            raise SdnetError(f"{name}: 'data' must be (N, 3072), got {pixels.shape}")
        images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[self.label_key], dtype=np.int64)
        check_split(images, labels, name, self.num_classes, self.image_size)
        return np.ascontiguousarray(images), labels

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        from sdnet.data.fake import write_tar_gz

        sizes = self.fake_counts(per_class, full_size)
        return write_tar_gz(out, self._fake_members(sizes["train"], sizes["test"], seed))

    def _fake_members(self, per_class: int, test_per_class: int, seed: int) -> Members:
        import numpy as np

        from sdnet.data.fake import Py2Str, balanced_labels, chunked_images, py2_pickle

        rng = np.random.default_rng(seed)
        train_labels = balanced_labels(per_class, rng)
        test_labels = balanced_labels(test_per_class, rng)
        yield self.folder_name, None
        meta = {Py2Str(b"num_cases_per_batch"): len(train_labels) // 5,
                Py2Str(b"label_names"): [Py2Str(c.encode()) for c in self.classes],
                Py2Str(b"num_vis"): 3072}
        yield f"{self.folder_name}/{self.meta_member}", py2_pickle(meta)
        for b, idx in enumerate(np.array_split(np.arange(len(train_labels)), 5), start=1):
            labels = train_labels[idx]
            yield (f"{self.folder_name}/data_batch_{b}",
                   _cifar10_batch(f"training batch {b} of 5", chunked_images(labels, rng),
                                  labels, int(idx[0])))
        yield (f"{self.folder_name}/test_batch",
               _cifar10_batch("testing batch 1 of 1", chunked_images(test_labels, rng),
                              test_labels, 0))


class CIFAR100(CIFAR10):
    name = "cifar100"
    title = "CIFAR-100"
    files = (RawFile("cifar-100-python.tar.gz",
                     "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                     "eb9058c3a382ffc7106e4002c42a8d85"),)
    num_classes = 100
    classes = CIFAR100_CLASSES
    fake_per_class = counts(train=40, test=10)
    real_per_class = counts(train=500, test=100)
    folder_name = "cifar-100-python"
    train_members = ("train",)
    test_member = "test"
    meta_member = "meta"
    label_key = "fine_labels"
    names_key = "fine_label_names"

    def _fake_members(self, per_class: int, test_per_class: int, seed: int) -> Members:
        import numpy as np

        from sdnet.data.fake import Py2Str, balanced_labels, chunked_images, py2_pickle

        rng = np.random.default_rng(seed)
        train_labels = balanced_labels(per_class, rng, self.num_classes)
        test_labels = balanced_labels(test_per_class, rng, self.num_classes)
        yield self.folder_name, None
        yield f"{self.folder_name}/file.txt~", b""  # the real archive ships this editor backup
        meta = {Py2Str(b"fine_label_names"): [Py2Str(c.encode()) for c in self.classes],
                Py2Str(b"coarse_label_names"): [Py2Str(c.encode())
                                                for c in CIFAR100_COARSE_CLASSES]}
        yield f"{self.folder_name}/meta", py2_pickle(meta)
        test_images = chunked_images(test_labels, rng)
        train_images = chunked_images(train_labels, rng)
        yield f"{self.folder_name}/test", _cifar100_pickle("test", test_images, test_labels)
        yield f"{self.folder_name}/train", _cifar100_pickle("train", train_images, train_labels)


def _check_names(meta: bytes, source: str, key: str, expected: tuple[str, ...]) -> None:
    from sdnet.data.archive import load_pickle

    names = load_pickle(meta, source).get(key)
    if list(names or []) != list(expected):
        shown = list(names or [])[:5]
        raise SdnetError(f"{source}: {key} {shown}... are not the expected {len(expected)} "
                         f"classes {list(expected[:5])}...")


def split_off_val(train: Split, val_size: int, split_seed: int) -> tuple[Split, Split | None]:
    """Hold out `val_size` training images chosen by a generator seeded with `split_seed`."""
    import numpy as np

    images, labels = train
    if not 0 <= val_size < len(labels):
        raise SdnetError(f"val_size must be in 0..{len(labels) - 1} for {len(labels)} training "
                         f"images, got {val_size}")
    if val_size == 0:
        return train, None
    perm = np.random.default_rng(split_seed).permutation(len(labels))
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def _rows(images: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def _cifar10_batch(name: str, images: np.ndarray, labels: np.ndarray, start: int) -> bytes:
    from sdnet.data.fake import Py2Str, py2_pickle

    return py2_pickle({
        Py2Str(b"batch_label"): Py2Str(name.encode()),
        Py2Str(b"labels"): [int(v) for v in labels],
        Py2Str(b"data"): _rows(images),
        Py2Str(b"filenames"): [Py2Str(f"fake_{start + i:06d}.png".encode())
                               for i in range(len(labels))],
    })


def _cifar100_pickle(name: str, images: np.ndarray, labels: np.ndarray) -> bytes:
    from sdnet.data.fake import Py2Str, py2_pickle

    return py2_pickle({
        Py2Str(b"filenames"): [Py2Str(f"fake_{name}_{i:06d}.png".encode())
                               for i in range(len(labels))],
        Py2Str(b"batch_label"): Py2Str(f"{name}ing batch 1 of 1".encode()),
        Py2Str(b"fine_labels"): [int(v) for v in labels],
        Py2Str(b"coarse_labels"): [CIFAR100_COARSE_OF_FINE[int(v)] for v in labels],
        Py2Str(b"data"): _rows(images),
    })


register_dataset(CIFAR10())
register_dataset(CIFAR100())
