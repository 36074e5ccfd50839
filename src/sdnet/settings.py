"""The settings of one training run (torch-free): `TrainConfig`, validation, fingerprint, diffs.

It sits below `sdnet.runfolder`, `sdnet.checkpoint` and `sdnet.train` (they all import it, it
imports none of them), so the run folder's readers (`sdnet status`, the report) can compare a
run's recorded settings with the expected ones without importing torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdnet import spec
from sdnet.errors import SdnetError

# Settings that never change what a run computes: left out of the fingerprint (device too,
# so a run may resume on another card) and, except device, out of summary["settings"].
NOT_SETTINGS = ("out", "restart", "on_mismatch", "log_every")
NOT_FINGERPRINTED = NOT_SETTINGS + ("device",)
# Config keys of the settings cascade that size a run's job, not what it computes: `gpus` (ranks,
# one GPU each) and `nodes` (workflow/rules/common.smk turns them into resources and
# `sdnet train --nproc/--nodes`); never a TrainConfig field.
RESOURCES = ("gpus", "nodes")
# Settings added after runs existed: at this value a setting is left out of the fingerprint and
# counts as what an older run recorded without it, so those runs stay valid.
LATER_SETTINGS = {"sync_bn": False}
# Keys settings_mismatch never compares: the above plus the data folder's path (the data enter
# the fingerprint by content, meta.json).
NOT_COMPARED = NOT_FINGERPRINTED + ("data",) + RESOURCES
# Data sets trained without pad-crop + flip by default, until sdnet.spec.dataset_spec says so.
_NO_AUGMENT_FALLBACK = ("svhn",)


@dataclass
class TrainConfig:
    """Every setting of one run; field names are the `sdnet train` flag names."""

    data: Path
    dataset: str
    depth: int
    out: Path
    arch: str | None = None
    shortcut: str = "A"
    survival: str = "linear"
    p_last: float = 0.5
    variant: str | None = None
    seed: int = 0
    epochs: int = 500
    batch_size: int = 128
    lr: float = 0.1
    milestones: list[int] = field(default_factory=lambda: [250, 375])
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    warmup_epochs: int = 0
    augment: bool | None = None
    limit_train: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    sync_bn: bool = False
    restart: bool = False
    on_mismatch: str = "error"
    log_every: int = 0


def default_augment(dataset: str) -> bool:
    """The data set's default for pad-crop + flip: on for the CIFAR sets and CINIC-10, off for
    SVHN (the original code augments "CIFAR only")."""
    dataset_spec = getattr(spec, "dataset_spec", None)
    if dataset_spec is not None:
        return bool(dataset_spec(dataset).augment)
    return dataset not in _NO_AUGMENT_FALLBACK


def check_config(config: TrainConfig) -> TrainConfig:
    """Validate settings up front (one clear SdnetError each), normalise types and resolve the
    data set's default `augment`."""
    config = dataclasses.replace(config, data=Path(config.data), out=Path(config.out),
                                 milestones=sorted(int(m) for m in config.milestones))
    spec.check_dataset(config.dataset)
    spec.resolve_arch(config.depth, config.arch)
    spec.check_survival(config.survival, config.p_last)
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr}
    for name, value in positive.items():
        if not value > 0:
            raise SdnetError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if config.limit_train is not None and config.limit_train < 1:
        raise SdnetError(f"--limit-train must be positive, got {config.limit_train}")
    if config.warmup_epochs < 0 or config.log_every < 0:
        raise SdnetError("--warmup-epochs and --log-every must be >= 0")
    if config.weight_decay < 0 or config.momentum < 0 or config.gamma <= 0:
        raise SdnetError("--weight-decay and --momentum must be >= 0, --gamma > 0")
    if config.nesterov and config.momentum == 0:
        raise SdnetError("Nesterov momentum needs --momentum > 0 (or pass --no-nesterov)")
    if config.shortcut not in ("A", "B"):
        raise SdnetError(f"--shortcut must be A or B, got {config.shortcut!r}")
    if config.on_mismatch not in ("error", "restart"):
        raise SdnetError(f"--on-mismatch must be error or restart, got {config.on_mismatch!r}")
    if config.augment is None:
        config = dataclasses.replace(config, augment=default_augment(config.dataset))
    return config


def settings_of(config: TrainConfig) -> dict:
    """summary.json / run.json "settings": every field but out/restart/on_mismatch/log_every,
    JSON-ready, with the architecture resolved (pass a `check_config`ed config)."""
    settings = {}
    for key, value in dataclasses.asdict(config).items():
        if key not in NOT_SETTINGS:
            settings[key] = str(value) if isinstance(value, Path) else value
    settings["arch"] = spec.resolve_arch(config.depth, config.arch)
    return settings


def fingerprint(settings: dict, meta: dict) -> str:
    """Hash of everything that changes results. The data enter by content (meta.json: md5 of the
    source archive, split, counts), not by path, so a moved data folder still resumes."""
    kept = {k: v for k, v in settings.items() if k not in NOT_FINGERPRINTED and k != "data"
            and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    kept["data_meta"] = meta
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: 1e-4 == 0.0001, 500 == 500.0, [250, 375] == (250, 375), Path == str."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return float(a) == float(b)
    if isinstance(a, Path) or isinstance(b, Path):
        return str(a) == str(b)
    return a == b


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def settings_mismatch(recorded: dict, expected: dict) -> list[str]:
    """'lr 0.1 -> 0.05' for each key of `expected` whose value differs from `recorded`.

    Keys may be TrainConfig field names or `sdnet train` flag names (`p-last`). Keys that do not
    change results (device, data, out, log_every, restart, on_mismatch) and expected values of
    None (= the trainer's default) are skipped.
    """
    diffs = []
    for key in sorted(expected):
        name = key.replace("-", "_")
        value = expected[key]
        if name in NOT_COMPARED or value is None:
            continue
        old = recorded.get(name, LATER_SETTINGS.get(name))
        if not _same(old, value):
            diffs.append(f"{name} {_show(old)} -> {_show(value)}")
    return diffs


def describe_mismatch(old: dict, new: dict) -> str:
    """'lr 0.1 -> 0.05, seed 0 -> 1': what differs between two runs' settings dicts."""
    keys = set(old) | set(new)
    return ", ".join(settings_mismatch(old, {k: new.get(k) for k in keys})) or \
        "the prepared data set differs"
