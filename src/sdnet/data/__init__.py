"""Data: download/verify/prepare CIFAR-10, CIFAR-100, CINIC-10 and SVHN, fakes, the loader.

One reader module per format (`cifar`: the CIFAR-10/100 pickles, `cinic`: the CINIC-10 PNG tree,
`svhn`: the SVHN .mat files) behind one `download` / `prepare` / `make_fake` interface.

Everything public is importable as `sdnet.data.<name>`; see docs/DESIGN.md (`sdnet.data`).
torch is imported only when a loader name is first used, so `sdnet data download|prepare|fake`
and the decoding worker processes stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

from sdnet.data.common import CLASSES, DATASET_INFO, DatasetInfo, class_names, dataset_info
from sdnet.data.download import download
from sdnet.data.fake import fake_prepared, make_fake
from sdnet.data.prepare import prepare
from sdnet.data.prepared import Prepared, load_prepared

_LAZY = {"DeviceLoader": "sdnet.data.loader", "crop_flip": "sdnet.data.loader",
         "epoch_seed": "sdnet.data.loader"}

__all__ = [
    "CLASSES", "DATASET_INFO", "DatasetInfo", "DeviceLoader", "Prepared", "class_names",
    "crop_flip", "dataset_info", "download", "epoch_seed", "fake_prepared", "load_prepared", "make_fake",
    "prepare",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdnet.data' has no attribute {name!r}")
