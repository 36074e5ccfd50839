"""The data sets sdnet can prepare: one object per data set, registered by name.

Torch-, numpy-, scipy- and PIL-free on purpose: the Snakefile (at parse time), `sdnet status`,
the config checks and the CLI's choices read the facts (files with URL and md5, classes, image
size, split options and their limits, fake sizes) without loading a reader. Each format module
(`sdnet.data.cifar`, `cinic`, `svhn`, ...) defines its objects, subclasses of `Dataset`, and
registers them; their `read` and `write_fake` import numpy, PIL or scipy only when called.

    register_dataset(obj)      add a data set (its format module does this at import)
    get_dataset("svhn")        the object; one line listing the valid names for an unknown one
    dataset_names()            every registered name, built-in ones first in BUILTIN_MODULES order

docs/DESIGN.md ("Adding a data set") says what an object holds and what is checked for it.
"""

from __future__ import annotations

import importlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sdnet.errors import SdnetError

# One split of a data set: (images uint8 (N, H, W, 3), labels int (N,)), numpy arrays (this
# module stays numpy-free: the Snakefile imports it).
Split = tuple[Any, Any]

# The format modules whose data sets are always registered, in the order users see them (CLI
# choices, config enum, report rows).
BUILTIN_MODULES = ("sdnet.data.cifar", "sdnet.data.cinic", "sdnet.data.svhn",
                   "sdnet.data.tinyimagenet", "sdnet.data.imagenet")
NAME_PATTERN = r"[a-z][a-z0-9]*"  # a folder name and a Snakemake wildcard value
URL_SCHEMES = ("https", "http", "file")  # anything else with a scheme is refused


class DatasetError(SdnetError, ValueError):
    """An unknown data set, file or split option; the message says what is valid."""


@dataclass(frozen=True)
class RawFile:
    """One official file: stored under `name`, fetched from `url`, checked against `md5`."""

    name: str
    url: str
    md5: str


def counts(**per_split: int) -> Mapping[str, int]:
    """An immutable {split: images per class} (the objects' fake and real sizes)."""
    return MappingProxyType(per_split)


def check_url(source: str) -> None:
    """DatasetError for a URL whose scheme sdnet cannot fetch (ftp://, s3://, ...); plain paths
    pass (a one-letter "scheme" is a Windows drive)."""
    scheme = urllib.parse.urlsplit(str(source)).scheme
    if len(scheme) > 1 and scheme not in URL_SCHEMES:
        raise DatasetError(f"cannot fetch {source}: unsupported URL scheme {scheme!r}; use "
                           "https://, http://, file:// or a plain path")


class Dataset:
    """One data set: its facts (class attributes) and its reader and fake writer (methods).

    A data set of one file (an archive) takes `val_size`: how many training images to hold out
    for validation (None: the data set's default). A data set of several files (SVHN) keeps them
    in one folder, each fetched on its own; its `url` is that folder. Subclasses set the facts
    and implement `read` and `write_fake`; the methods below them have defaults that fit a
    single-archive data set whose validation images come out of its training split.
    """

    name: str = ""                          # "cifar10": config key, folder name, CLI choice
    title: str = ""                         # "CIFAR-10": what reports print
    files: tuple[RawFile, ...] = ()         # the official files
    num_classes: int = 0
    classes: tuple[str, ...] | None = None  # names in label order; None: read from the files
    image_size: int = 32                    # prepared images are (N, size, size, 3)
    augment: bool = True                    # pad-crop + flip unless a run says otherwise
    # Images per class of each split of the raw files: a default `sdnet data fake`, and the
    # real set (its --full-size fake and the limits of the split options).
    fake_per_class: Mapping[str, int] = counts()
    real_per_class: Mapping[str, int] = counts()
    options: tuple[str, ...] = ("val_size",)  # the split options `prepare` and config take
    # Files the user must bring (ImageNet: behind a login): where to get them. Such files are
    # never fetched from their official URL, and a local copy is linked, not copied.
    user_supplied: str | None = None

    # --- facts ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<data set {self.name}>"

    @property
    def folder(self) -> bool:
        """Several files in one folder, each fetched on its own (`url` is the folder)."""
        return len(self.files) > 1

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)

    @property
    def url(self) -> str:
        """The official source: the archive's URL, or the folder holding the files."""
        if not self.folder:
            return self.files[0].url
        return self.files[0].url.rsplit("/", 1)[0] + "/"

    def file(self, name: str | None = None) -> RawFile:
        """The official file `name` (the one archive when None and there is only one); a
        DatasetError listing the valid names otherwise."""
        for raw in self.files:
            if raw.name == name or (name is None and not self.folder):
                return raw
        given = "no file given" if name is None else f"unknown file {name!r}"
        raise DatasetError(f"{self.name}: {given}; choose one of {', '.join(self.file_names)} "
                           "(--file)")

    def file_url(self, name: str, base: str | None = None) -> str:
        """Where to fetch file `name`: `base` (default: the official URL) itself for a single
        archive; for a folder data set `base` is the folder and the file name is appended."""
        if base is None:
            return self.file(name).url
        base = str(base)
        check_url(base)
        if not self.folder:
            return base
        if urllib.parse.urlsplit(base).scheme in URL_SCHEMES:
            return base.rstrip("/") + "/" + urllib.parse.quote(name)
        return str(Path(base).expanduser() / name)

    def needed_files(self, options: Mapping[str, Any] | None = None) -> tuple[RawFile, ...]:
        """The files a configuration (a config entry, or split options) needs: all of them
        unless an option leaves one out (SVHN's extra without use_extra)."""
        return self.files

    # --- split options ---------------------------------------------------------------------

    @property
    def max_val_size(self) -> int | None:
        """The largest `val_size` the real set allows; None when the data set takes none."""
        return self.val_limit(self.real_per_class) if "val_size" in self.options else None

    def val_limit(self, per_class: Mapping[str, int]) -> int:
        """The largest `val_size` for raw files with `per_class` images per class and split:
        all but one training image."""
        return per_class["train"] * self.num_classes - 1

    def split_options(self, **given: Any) -> dict[str, Any]:
        """The split options `read` receives: `given` (None = the default) checked, defaults
        filled in; DatasetError for an option this data set does not take."""
        given = {k: v for k, v in given.items() if v is not None}
        self._refuse_unknown(given)
        val_size = given.get("val_size")
        if val_size is not None and (isinstance(val_size, bool) or not isinstance(val_size, int)
                                     or val_size < 0):
            raise DatasetError(f"val_size must be an integer >= 0, got {val_size!r}")
        return {"val_size": val_size}

    def _refuse_unknown(self, given: Mapping[str, Any]) -> None:
        unknown = [key for key in given if key not in self.options]
        if unknown:
            raise DatasetError(f"{self.name} takes no {unknown[0]}; its split options are "
                               f"{', '.join(self.options)}")

    def option_schema(self) -> dict[str, dict]:
        """JSON schema of the split options in a config entry (sdnet.grid adds it to the
        config schema at validation time, with the defaults it fills in)."""
        limit = f", at most {self.max_val_size:,}" if self.max_val_size is not None else ""
        return {"val_size": {
            "type": ["integer", "null"], "minimum": 0, "default": None,
            "description": f"validation images (null = the data set's default{limit}; 0 = none)"}}

    def config_schema(self) -> dict:
        """JSON schema of this data set's `datasets.<name>` config entry: the keys every entry
        has (the schema file's `$defs/source`), `md5` (one value, or one per file name for a
        folder data set; `$defs/md5`), and the split options."""
        md5: dict = {"$ref": "#/$defs/md5", "default": None}
        if self.folder:
            md5 = {"description": "file name -> expected md5 (a missing name or null = the "
                   "official one)", "type": ["object", "null"], "default": None,
                   "propertyNames": {"enum": list(self.file_names)},
                   "additionalProperties": {"$ref": "#/$defs/md5"}}
        return {"description": self.title, "type": "object",
                "allOf": [{"$ref": "#/$defs/source"}],
                "properties": {"md5": md5, **self.option_schema()},
                "unevaluatedProperties": False}

    def config_problem(self, entry: Mapping[str, Any]) -> str | None:
        """What does not fit in a (schema-valid) config entry, as '<key>: <why>'; None if all
        fits. With `fake:` the limits are the fake's."""
        val_size = entry.get("val_size")
        if val_size is None or self.max_val_size is None:
            return None
        fake = entry.get("fake")
        if fake is None:
            limit, what = self.max_val_size, self.title
        else:
            per_class = self.fake_counts(fake.get("per_class"))
            limit = self.val_limit(per_class)
            given = "fake.per_class gives" if "per_class" in fake else "the default fake has"
            what = f"its fake ({given} {self.val_source_images(per_class)} images to take it from)"
        if val_size > limit:
            return f"val_size: {val_size} does not fit {what}: at most {limit} validation images"
        return None

    def val_source_images(self, per_class: Mapping[str, int]) -> int:
        """How many images the validation split is drawn from (the training split's)."""
        return per_class["train"] * self.num_classes

    # --- fakes ------------------------------------------------------------------------------

    def fake_counts(self, per_class: int | None = None, full_size: bool = False
                    ) -> dict[str, int]:
        """Images per class of each split of a fake: `per_class` for every split, the real
        set's (full_size) or the small default."""
        if full_size:
            return dict(self.real_per_class)
        if per_class is None:
            return dict(self.fake_per_class)
        return {split: int(per_class) for split in self.fake_per_class}

    def fake_options(self, per_class: int | None = None) -> dict[str, Any]:
        """Split options that fit a fake made with `per_class` (where the defaults need the
        real files); `fake_prepared` uses them unless told otherwise."""
        return {}

    # --- reading ----------------------------------------------------------------------------

    def class_names(self, raw: Mapping[str, Path]) -> tuple[str, ...]:
        """The class names in label order (meta.json's "classes")."""
        if self.classes is None:
            raise NotImplementedError(f"{self.name}: classes come from the files; override "
                                      "class_names")
        return self.classes

    def meta_fields(self, raw: Mapping[str, Path], options: Mapping[str, Any]) -> dict:
        """Settings of this data set that shape the arrays, recorded in meta.json (and so in the
        trainer's fingerprint) beyond val_size and split_seed."""
        return {}

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict[str, Split]:
        """{"train": (images, labels), "val": ..., "test": ...} (no "val" when empty) from the
        raw files (`raw`: official file name -> local path, the needed files only): images
        uint8 (N, image_size, image_size, 3) RGB, labels int64 in class order; the same files
        and options always give the same arrays."""
        raise NotImplementedError

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        """Write a fake in exactly the real format to `out` (the archive's path; a folder data
        set: the folder receiving its files), byte-reproducible for a seed; return `out`."""
        raise NotImplementedError


_REGISTRY: dict[str, Dataset] = {}
_builtin_loaded = False


def register_dataset(dataset: Dataset) -> Dataset:
    """Add `dataset` under its name (returns it, so a module can write `X = register_dataset(
    X())`); DatasetError for a bad or taken name or missing facts."""
    name = dataset.name
    if not re.fullmatch(NAME_PATTERN, name or ""):
        raise DatasetError(f"data set name {name!r} must match {NAME_PATTERN} (it names folders "
                           "and config keys)")
    taken = _REGISTRY.get(name)
    if taken is not None and type(taken).__qualname__ != type(dataset).__qualname__:
        raise DatasetError(f"data set {name!r} is already registered ({type(taken).__name__})")
    if not dataset.files or dataset.num_classes < 1 or not dataset.title:
        raise DatasetError(f"data set {name!r} needs a title, files and num_classes")
    if dataset.classes is not None and len(dataset.classes) != dataset.num_classes:
        raise DatasetError(f"data set {name!r}: {len(dataset.classes)} class names for "
                           f"{dataset.num_classes} classes")
    _REGISTRY[name] = dataset
    return dataset


def _load_builtin() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _rank(dataset: Dataset) -> int:
    module = type(dataset).__module__
    return BUILTIN_MODULES.index(module) if module in BUILTIN_MODULES else len(BUILTIN_MODULES)


def dataset_names() -> tuple[str, ...]:
    """Every registered data set: the built-in ones in BUILTIN_MODULES order (each module's in
    the order it registers them), then any others in registration order."""
    _load_builtin()
    order = {name: i for i, name in enumerate(_REGISTRY)}
    return tuple(sorted(_REGISTRY, key=lambda name: (_rank(_REGISTRY[name]), order[name])))


def datasets() -> tuple[Dataset, ...]:
    """The registered objects, in `dataset_names()` order."""
    return tuple(_REGISTRY[name] for name in dataset_names())


def get_dataset(name: str) -> Dataset:
    """The data set called `name`; one-line DatasetError listing the valid names otherwise."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown data set {name!r}; choose one of "
                           f"{', '.join(dataset_names())}") from None
