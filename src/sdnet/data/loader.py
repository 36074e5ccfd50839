"""Batches straight from device memory: the whole split lives on the device as uint8 NCHW.

Any image size H x W works (CIFAR's 32x32, Tiny ImageNet's 64x64): the crop keeps it.
Shuffling and augmentation (pad-4 random crop + horizontal flip) are drawn from one generator on
the loader's device, seeded by (seed, epoch) only: a resumed epoch replays exactly the same
batches, and nothing forces a host-device sync. Crop and flip are one gather over the batch.

Normalisation: a per-channel mean and std, or (the original code's `preprocess`) a mean image
(3, H, W) and one scalar std. The border of a shifted image (`pad_fill`): "mean" normalises
first and pads with 0 (the original shifts normalised images into a zeroed canvas, so the border
is the mean colour); "black" pads the raw uint8 image with 0 and then normalises (torchvision's
RandomCrop(padding=4) before Normalize; a quarter of the bytes to gather).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

PAD = 4
PAD_FILLS = ("mean", "black")  # sdnet.settings.PAD_FILLS


def part(count: int, rank: int, ranks: int) -> tuple[int, int]:
    """[start, stop) of rank's share of `count` items: equal parts, the first ranks one smaller.
    (Every loader's rank split: `sdnet.distributed.shards`, `JpegLoader.shard_batches`.)"""
    return count * rank // ranks, count * (rank + 1) // ranks


def epoch_seed(seed: int, epoch: int) -> int:
    """One generator seed per (seed, epoch); nothing else feeds the data order."""
    return int(seed) * 1_000_003 + int(epoch)


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
              flip: torch.Tensor) -> torch.Tensor:
    """Crop each image of an NCHW batch (uint8, or float32 already normalised) at (dy, dx) of its
    zero-padded copy, then flip.

    On raw uint8 pixels the border is black (torchvision's RandomCrop((h, w), padding=4) before
    Normalize); on normalised ones it is the mean. dy, dx in [0, 2 * PAD]; flip is bool. One
    `gather` over each image's flattened padded plane, with an index shared by the channels:
    about 5x faster on CPU than 4-D advanced indexing (benchmarks/README.md).
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD)).reshape(n, c, -1)
    ar_h = torch.arange(h, device=images.device)
    ar_w = torch.arange(w, device=images.device)
    rows = dy[:, None] + ar_h  # (n, h)
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (n, w)
    index = (rows[:, :, None] * (w + 2 * PAD) + cols[:, None, :]).reshape(n, 1, h * w)
    return padded.gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


class DeviceLoader:
    """One split on one device; `batches(epoch)` yields normalised float32 NCHW batches.

    `mean`: per channel (3 values) or a mean image (3, H, W); `std`: per channel or one scalar;
    both on the 0-1 scale. `pad_fill`: the border of shifted images (module docstring)."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, device: str | torch.device,
                 mean: Sequence[float] | np.ndarray, std: Sequence[float] | float,
                 augment: bool, shuffle: bool, seed: int = 0,
                 channels_last: bool = False, pad_fill: str = "black") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        host = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
        if host.dtype != torch.uint8 or host.ndim != 4 or host.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {host.dtype} {tuple(host.shape)}")
        self.images = host.permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if pad_fill not in PAD_FILLS:
            raise ValueError(f"pad_fill must be one of {PAD_FILLS}, got {pad_fill!r}")
        self.pad_fill = pad_fill
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32), device=self.device)
        if mean_t.shape == (3,):
            mean_t = mean_t.view(1, 3, 1, 1)
        elif mean_t.shape == self.images.shape[1:]:
            mean_t = mean_t[None]
        else:
            raise ValueError(f"mean must hold 3 values or a {tuple(self.images.shape[1:])} "
                             f"image, got shape {tuple(mean_t.shape)}")
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32), device=self.device)
        std_t = std_t.view(1, 3, 1, 1) if std_t.numel() == 3 else std_t.reshape(())
        # (x / 255 - mean) / std as one multiply-add.
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.channels_last = bool(channels_last)

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float32 normalised (0-1 scale mean/std), optionally channels_last."""
        return self._layout(self._normalized(images))

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self._shift, images.float(), self._scale)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _generator(self, epoch: int) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(epoch_seed(self.seed, epoch))
        return gen

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Order of the epoch and per-position (dy, dx, flip) draws, all on the device."""
        n, dev = self.num_samples, self.device
        gen = self._generator(epoch)
        if self.shuffle:
            order = torch.randperm(n, generator=gen, device=dev)
        else:
            order = torch.arange(n, device=dev)
        aug = None
        if self.augment:
            offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=gen, device=dev)
            flips = torch.randint(0, 2, (n,), generator=gen, device=dev)
            aug = torch.cat([offsets, flips[None]], 0)  # (3, n): dy, dx, flip
        return order, aug

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x float32 NCHW normalised, y int64) on the device; the last partial batch is kept."""
        order, aug = self._epoch_plan(epoch)
        for start in range(0, self.num_samples, self.batch_size):
            idx = order[start:start + self.batch_size]
            draws = aug[:, start:start + self.batch_size] if aug is not None else None
            yield self.transform(self.images[idx], draws), self.labels[idx]

    def transform(self, images: torch.Tensor, draws: torch.Tensor | None) -> torch.Tensor:
        """uint8 NCHW images -> the network's input: normalised and, with `draws` (3, n: dy, dx,
        flip), shifted and flipped, the border filled as `pad_fill` says."""
        if draws is None:
            return self.normalize(images)
        dy, dx, flip = draws
        if self.pad_fill == "mean":  # normalise, then shift into a zero (= mean) border
            return self._layout(crop_flip(self._normalized(images), dy, dx, flip.bool()))
        return self.normalize(crop_flip(images, dy, dx, flip.bool()))  # raw 0 = black border

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch 0; use `batches(epoch)` in training loops."""
        return self.batches(0)
