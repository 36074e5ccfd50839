"""One training run: the loop and everything a run folder holds.

- `loop`: the epoch loop and `train()` (torch);
- `runfolder`: the folder's file names, readers and writers, lock, status (torch-free);
- `lifecycle`: a run folder's life in one object (`RunFolder`): open (resume, restart or
  refuse), per-epoch writes, finish, with the full-disk guard;
- `checkpoint`, `device`, `events`, `gradients` (torch) and `accounting` (torch-free).

`from sdnet.train import train, TrainConfig` works as before; the names load on first use, so the
torch-free modules (`sdnet.train.runfolder`, `sdnet.train.accounting`) stay light for
`sdnet status` and the Snakefile.
"""

from __future__ import annotations

import importlib
from typing import Any

_LOOP = ("train", "check_config", "fingerprint", "resolve_device", "settings_of")
__all__ = ["TrainConfig", "check_config", "fingerprint", "resolve_device", "settings_of", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from sdnet.settings import TrainConfig

        return TrainConfig
    if name in _LOOP:
        return getattr(importlib.import_module("sdnet.train.loop"), name)
    raise AttributeError(f"module 'sdnet.train' has no attribute {name!r}")
