"""Data: download/verify/extract/prepare CIFAR-10 and CINIC-10, fakes, and the on-device loader.

Everything public is importable as `sdnet.data.<name>`; see docs/DESIGN.md (`sdnet.data`).
torch is imported only when a loader name is first used, so `sdnet data download|prepare|fake`
and the decoding worker processes stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

from sdnet.data.common import CLASSES, DATASET_INFO, DatasetInfo, dataset_info
from sdnet.data.download import download
from sdnet.data.fake import fake_prepared, make_fake
from sdnet.data.prepare import prepare
from sdnet.data.prepared import Prepared, load_prepared

_LAZY = {"DeviceLoader": "sdnet.data.loader", "crop_flip": "sdnet.data.loader",
         "epoch_seed": "sdnet.data.loader"}

__all__ = [
    "CLASSES", "DATASET_INFO", "DatasetInfo", "DeviceLoader", "Prepared", "crop_flip",
    "dataset_info", "download", "epoch_seed", "fake_prepared", "load_prepared", "make_fake",
    "prepare",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdnet.data' has no attribute {name!r}")
