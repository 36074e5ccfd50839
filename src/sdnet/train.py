"""One training run: loop, checkpoint/resume, metrics. (Being built: see docs/DESIGN.md.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    limit_train: int | None = None
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    restart: bool = False
    on_mismatch: str = "error"
    log_every: int = 0


def train(config: TrainConfig) -> dict:
    raise NotImplementedError("being built")
