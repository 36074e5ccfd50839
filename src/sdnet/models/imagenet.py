"""torchvision's ImageNet ResNets (He et al. 2015), every residual block gated (stochastic depth).

The layout is torchvision's `resnet18` ... `resnet152` (and fb.resnet.torch's, which the paper
trained): a 7x7 stride-2 convolution, BN, ReLU and a 3x3 stride-2 max-pool, then four stages of
basic blocks (18, 34) or bottleneck blocks (50, 101, 152: 1x1-3x3-1x1 with the stride on the
3x3, torchvision's "ResNet v1.5"), 64..512 wide, a projection shortcut (1x1 conv + BN) where the
shape changes, global average pool and fc. Parameter counts equal torchvision's (ResNet-152:
60,192,808); the gates add no parameters or buffers. Every block, the first of each stage
included, is gated by the network's one `Gate` (50 in ResNet-152), as in the paper's code, where
a dropped transition block still runs its shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from sdnet import networks
from sdnet.models.resnet import ResidualBlock, ResNet, conv1x1, conv3x3, projection

__all__ = ["ImageNetBasicBlock", "ImageNetBottleneck", "imagenet_resnet", "imagenet_stem"]

WIDTHS = (64, 128, 256, 512)


class ImageNetBasicBlock(ResidualBlock):
    """conv3x3-BN-ReLU-conv3x3-BN, a projection shortcut where stride or width change."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        changes = stride != 1 or in_planes != planes
        self.shortcut = projection(in_planes, planes, stride) if changes else nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class ImageNetBottleneck(ResidualBlock):
    """1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1-BN with expansion 4 (torchvision's Bottleneck)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        changes = stride != 1 or in_planes != out_planes
        self.shortcut = projection(in_planes, out_planes, stride) if changes else nn.Identity()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def imagenet_stem() -> nn.Sequential:
    """7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool: 224x224 in, 56x56 maps out."""
    return nn.Sequential(nn.Conv2d(3, WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False),
                         nn.BatchNorm2d(WIDTHS[0]), nn.ReLU(inplace=True),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def imagenet_resnet(depth: int, *, num_classes: int = 1000, image_size: int = 224,
                    shortcut: str = "B", survival: str = "none", p_last: float = 0.5) -> ResNet:
    """ResNet-`depth` (18, 34, 50, 101, 152) as torchvision builds it, gated.

    `image_size` is any size of at least 32 (the pool is global); `shortcut` is ignored: the
    shortcuts are always projections (torchvision's, fb.resnet.torch's `-shortcutType B`)."""
    networks.resolve_arch(depth, "imagenet")
    kind, stages = networks.IMAGENET_STAGES[depth]
    block = ImageNetBasicBlock if kind == "basic" else ImageNetBottleneck
    blocks: list[nn.Module] = []
    in_planes = WIDTHS[0]
    for stage, (count, planes) in enumerate(zip(stages, WIDTHS)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(block(in_planes, planes, stride))
            in_planes = planes * block.expansion
    return ResNet(imagenet_stem(), blocks, in_planes, num_classes, survival, p_last)
