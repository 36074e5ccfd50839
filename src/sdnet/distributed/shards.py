"""Each rank's part of the data: its slice of every global batch, its slice of an evaluation split.

The epoch's order and augmentation draws come from the full loader's generator, seeded by (seed,
epoch) only, so every rank draws the same plan on its own device; rank r then takes its
contiguous part of each global batch and crops and flips only those images. A run of N ranks
therefore trains on exactly the images, in exactly the batches, a run of one rank sees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from sdnet.data.loader import part


class TrainShard:
    """The training loader as one rank sees it: as many steps as the full loader, each with
    this rank's part of the global batch. `num_samples` stays the full split's."""

    def __init__(self, loader: Any, rank: int, ranks: int) -> None:
        self.loader, self.rank, self.ranks = loader, rank, ranks
        self.batch_size = loader.batch_size  # the global batch
        self.augment = loader.augment

    @property
    def num_samples(self) -> int:
        return self.loader.num_samples

    def __len__(self) -> int:
        return len(self.loader)

    def global_batch(self, step: int) -> int:
        """Images in global batch `step` (the last one may be short)."""
        return min(self.batch_size, self.num_samples - step * self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = self.loader
        if hasattr(loader, "shard_batches"):  # sdnet.data.jpeg_loader: the same parts
            yield from loader.shard_batches(epoch, self.rank, self.ranks)
            return
        order, aug = loader._epoch_plan(epoch)
        for start in range(0, self.num_samples, self.batch_size):
            lo, hi = part(min(self.batch_size, self.num_samples - start), self.rank, self.ranks)
            idx = order[start + lo:start + hi]
            draws = aug[:, start + lo:start + hi] if aug is not None else None
            yield loader.transform(loader.images[idx], draws), loader.labels[idx]


class EvalShard:
    """An evaluation split as one rank sees it: a contiguous part, in the full loader's batch
    size. `num_samples` is the full split's: the reduced error count is divided by it."""

    def __init__(self, loader: Any, rank: int, ranks: int) -> None:
        self.loader = loader
        self.batch_size = loader.batch_size
        self.augment = False
        self.start, self.stop = part(loader.num_samples, rank, ranks)

    @property
    def num_samples(self) -> int:
        return self.loader.num_samples

    def __len__(self) -> int:
        return math.ceil((self.stop - self.start) / self.batch_size)

    def batches(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = self.loader
        for begin in range(self.start, self.stop, self.batch_size):
            end = min(begin + self.batch_size, self.stop)
            yield loader.normalize(loader.images[begin:end]), loader.labels[begin:end]
