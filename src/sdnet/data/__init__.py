"""Data: download/verify/prepare the registered data sets, fakes, the loader.

One object per data set, in its format module (`cifar`: CIFAR-10 and CIFAR-100, `cinic`,
`svhn`), registered in `sdnet.data.registry`; `download` / `prepare` / `make_fake` work for
every registered data set through it.

Everything public is importable as `sdnet.data.<name>`; see docs/DESIGN.md (`sdnet.data`).
Importing the package, the registry and the format modules is light (no numpy, PIL, scipy or
torch: the Snakefile imports them at parse time); the arrays, fakes and loader load on first
use, torch only with the loader, so `sdnet data download|prepare|fake` and the decoding worker
processes stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

# `download` and `prepare` are light modules whose functions share their names: imported here so
# that the package attributes are the functions, not the modules.
from sdnet.data.download import download
from sdnet.data.prepare import prepare
from sdnet.data.registry import Dataset, RawFile, dataset_names, get_dataset, register_dataset

_LAZY = {"DeviceLoader": "sdnet.data.loader", "JpegLoader": "sdnet.data.jpeg_loader", "crop_flip": "sdnet.data.loader",
         "epoch_seed": "sdnet.data.loader", "Prepared": "sdnet.data.prepared",
         "load_prepared": "sdnet.data.prepared", "fake_prepared": "sdnet.data.fake",
         "make_fake": "sdnet.data.fake"}

__all__ = [
    "Dataset", "DeviceLoader", "JpegLoader", "Prepared", "RawFile", "crop_flip", "dataset_names", "download",
    "epoch_seed", "fake_prepared", "get_dataset", "load_prepared", "make_fake", "prepare",
    "register_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdnet.data' has no attribute {name!r}")
