"""The conventional PyTorch recipe a user would write instead of sdnet: the benchmarks' yardstick.

- Data: a PIL-image data set exactly like torchvision.datasets.CIFAR10 (uint8 HWC arrays,
  `Image.fromarray` per item), RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
  Normalize, batched by a torchvision/torch DataLoader; NCHW float32.
- Model: He et al.'s CIFAR ResNet (option A shortcut, as in the paper's code), with
  torchvision.ops.StochasticDepth(p=1 - p_l, mode="batch") on each residual branch output and
  p_l from the same linear rule over depth as sdnet. StochasticDepth computes every branch and
  multiplies it by 0 or 1/p_l, so it has the expected function of sdnet's gating at full cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.ops import StochasticDepth


class PILImages(Dataset):
    """torchvision.datasets.CIFAR10's item path: numpy HWC -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        self.images = images
        self.labels = [int(v) for v in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def train_transform(mean: Sequence[float], std: Sequence[float]) -> transforms.Compose:
    return transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def make_loader(images: np.ndarray, labels: np.ndarray, *, batch_size: int, workers: int,
                mean: Sequence[float], std: Sequence[float], pin_memory: bool = False,
                seed: int = 0) -> DataLoader:
    """Shuffled training loader as the PyTorch CIFAR tutorials write it (workers persist)."""
    data = PILImages(images, labels, train_transform(mean, std))
    return DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0, drop_last=False,
                      generator=torch.Generator().manual_seed(seed))


def endless(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches forever: a new epoch (new shuffle) whenever the loader runs out."""
    while True:
        yield from loader


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN branch, StochasticDepth on its output, option-A shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, drop: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = StochasticDepth(drop, mode="batch")
        self.stride = stride
        self.extra = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.extra == 0:
            return x
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.drop(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2 (16/32/64 wide); `drops` = drop probability per block."""

    def __init__(self, depth: int, drops: Sequence[float], num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        if depth < 8 or (depth - 2) % 6 or len(drops) != 3 * n:
            raise ValueError(f"depth {depth} needs 6n+2 and {3 * n} drop probabilities")
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(Block(in_planes, planes, stride, drops[len(blocks)]))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def linear_drops(depth: int, p_last: float | None) -> list[float]:
    """Drop probabilities 1 - p_l of the linear rule (Eq. 4); None = plain ResNet (all 0)."""
    num_blocks = 3 * ((depth - 2) // 6)
    if p_last is None:
        return [0.0] * num_blocks
    return [(l / num_blocks) * (1.0 - p_last) for l in range(1, num_blocks + 1)]


def build(depth: int, p_last: float | None) -> ResNet:
    return ResNet(depth, linear_drops(depth, p_last))
