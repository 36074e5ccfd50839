"""Data: download/verify/extract/prepare CIFAR-10 and CINIC-10, fakes, and the on-device loader.

Everything public is importable as `sdnet.data.<name>`; see docs/DESIGN.md (`sdnet.data`).
"""

from sdnet.data.common import CLASSES, DATASET_INFO, DatasetInfo, dataset_info
from sdnet.data.loader import DeviceLoader, crop_flip, epoch_seed
from sdnet.data.prepared import Prepared, load_prepared

__all__ = [
    "CLASSES", "DATASET_INFO", "DatasetInfo", "DeviceLoader", "Prepared", "crop_flip",
    "dataset_info", "epoch_seed", "load_prepared",
]
