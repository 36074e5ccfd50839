"""Facts about the data sets (files, checksums, class names) and the small helpers every data
step shares. The torch-free facts the workflow needs (file names, number of classes) are in
`sdnet.spec.DATASET_SPECS`; this module adds where the files live and their md5s."""

from __future__ import annotations

import multiprocessing
import os
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sdnet import spec
from sdnet.errors import SdnetError

# CIFAR-10's class order; CINIC-10 labels are mapped onto it.
CLASSES = (
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
SVHN_CLASSES = tuple(str(d) for d in range(10))  # label = digit (the files store 0 as 10)
IMAGE_SHAPE = (32, 32, 3)
FORMAT_VERSION = 1
URL_SCHEMES = ("https", "http", "file")  # anything else with a scheme is refused


@dataclass(frozen=True)
class DatasetInfo:
    """Where the official files live, what they are called, and their checksums."""

    name: str
    url: str              # the archive's URL; for a folder data set (SVHN), the folder's
    md5s: dict[str, str]  # official file name -> md5, in spec.DatasetSpec.files order
    folder: bool = False  # `url` is a folder holding several files, each fetched on its own

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(self.md5s)

    @property
    def archive(self) -> str:
        """The one archive's name (data sets shipped as a single archive)."""
        if len(self.md5s) != 1:
            raise SdnetError(f"{self.name} has several files ({', '.join(self.files)}), "
                             "not one archive")
        return self.files[0]

    @property
    def md5(self) -> str:
        return self.md5s[self.archive]

    def file_name(self, name: str | None) -> str:
        """`name` if it is one of the official files; the archive's name when omitted for a
        single-archive data set; else SdnetError listing the valid names."""
        if name is None and not self.folder:
            return self.archive
        if name not in self.md5s:
            given = "no file given" if name is None else f"unknown file {name!r}"
            raise SdnetError(f"{self.name}: {given}; choose one of {', '.join(self.files)} "
                             "(--file)")
        return name

    def file_url(self, name: str, base: str | None = None) -> str:
        """Where to fetch file `name`: `base` (default: the official URL) itself for a single
        archive; for a folder data set `base` is the folder and the file name is appended."""
        base = str(base or self.url)
        check_url(base)
        if not self.folder:
            return base
        if urllib.parse.urlsplit(base).scheme in URL_SCHEMES:
            return base.rstrip("/") + "/" + urllib.parse.quote(name)
        return str(Path(base).expanduser() / name)


DATASET_INFO = {
    "cifar10": DatasetInfo(
        name="cifar10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5s={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5s={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    ),
    "cinic10": DatasetInfo(
        name="cinic10",
        url="https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz",
        # Listed by third-party code, not confirmed against the official page: pass --md5 to
        # override (or set SDNET_CINIC10_MD5) if the official archive turns out to differ.
        md5s={"CINIC-10.tar.gz": os.environ.get("SDNET_CINIC10_MD5",
                                                "6ee4d0c996905fe93221de577967a372")},
    ),
    "svhn": DatasetInfo(
        name="svhn",
        url="http://ufldl.stanford.edu/housenumbers/",
        md5s={  # as torchvision lists them
            "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
            "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
            "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
        },
        folder=True,
    ),
}
CLASS_NAMES = {"cifar10": CLASSES, "cifar100": CIFAR100_CLASSES, "cinic10": CLASSES,
               "svhn": SVHN_CLASSES}


def dataset_info(name: str) -> DatasetInfo:
    """Info for a data set name; SdnetError (from spec) for an unknown one."""
    spec.check_dataset(name)
    return DATASET_INFO[name]


def class_names(dataset: str) -> tuple[str, ...]:
    """The data set's class names in label order (meta.json's "classes")."""
    spec.check_dataset(dataset)
    return CLASS_NAMES[dataset]


def check_url(source: str) -> None:
    """SdnetError for a URL whose scheme sdnet cannot fetch (ftp://, s3://, ...); plain paths
    pass (a one-letter "scheme" is a Windows drive)."""
    scheme = urllib.parse.urlsplit(str(source)).scheme
    if len(scheme) > 1 and scheme not in URL_SCHEMES:
        raise SdnetError(f"cannot fetch {source}: unsupported URL scheme {scheme!r}; use "
                         "https://, http://, file:// or a plain path")


def require_file(path: Path, hint: str) -> Path:
    """Raise SdnetError naming a missing file and what to run to make it."""
    path = Path(path)
    if not path.is_file():
        raise SdnetError(f"{path} not found; {hint}")
    return path


def default_workers() -> int:
    """The cores this process may use (the Slurm/cgroup allocation, not the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers start clean (forkserver/spawn): forking a process that has loaded
    torch, with its thread pools, can deadlock."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
