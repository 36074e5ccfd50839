"""Pre-activation ResNets (He et al. 2016, "Identity mappings in deep residual networks"), gated.

A pre-activation unit computes x_{l+1} = x_l + f_l(x_l) with f_l = BN-ReLU-conv ... and no ReLU
after the addition, so the path from block to block is a pure identity. Stochastic depth keeps
that: in training a dropped unit's output is its shortcut alone (x_l for an identity unit, no
ReLU), its branch never computed; at test time x_l + p_l f_l(x_l) (Eq. 5).

As in the paper's CIFAR code (KaimingHe/resnet-1k-layers, resnet-pre-act.lua):
- the stem is one 3x3 conv (stride 2 for 64x64 images), without BN-ReLU: the first unit's own
  BN-ReLU follows it; the network ends with BN-ReLU, global average pool and fc;
- a unit that changes the shape (the first of a stage where width or stride change) applies its
  first BN-ReLU once and feeds the result to both the branch and a 1x1 projection shortcut of
  that stride (no BN on the shortcut); every other unit has an identity shortcut. So a dropped
  transition unit still runs BN-ReLU + projection (the original code's transitions also run
  their shortcut when dropped), and its BN's running statistics move;
- bottleneck units (1x1-3x3-1x1, expansion 4) put the stride in their first 1x1 conv.
The `shortcut` option (A/B) of the CIFAR ResNet does not apply here.

`preact`: basic units (two 3x3 convs), 3 stages of n = (depth - 2) / 6, widths 16/32/64
(ResNet-110: 1.7 M parameters). `preact-bottleneck`: bottleneck units, n = (depth - 2) / 9,
bottleneck widths 16/32/64 -> outputs 64/128/256 (ResNet-164: 1.7 M, ResNet-1001: 10.3 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdnet import networks
from sdnet.models.resnet import ResNet, conv1x1, conv3x3, stem

__all__ = ["PreActBasicBlock", "PreActBlock", "PreActBottleneck", "preact_bottleneck_resnet",
           "preact_resnet"]

PREACT_WIDTHS = (16, 32, 64)


class PreActBlock(nn.Module):
    """A gated pre-activation unit: shortcut(x) + scale * residual(BN-ReLU(x)), no final ReLU.

    Subclasses make `bn1` (the first BN, on the unit's input), `residual(pre)` (everything after
    the first BN-ReLU) and `projection` (None for an identity shortcut)."""

    bn1: nn.BatchNorm2d
    projection: nn.Module | None

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """f_l(x): the residual function of the unit's input."""
        return self.residual(F.relu(self.bn1(x), inplace=True))

    def forward(self, x: torch.Tensor, active: bool = True, scale: float = 1.0) -> torch.Tensor:
        if self.projection is None:
            if not active:
                return x  # the whole unit is its branch: nothing computed
            pre, shortcut = F.relu(self.bn1(x), inplace=True), x
        else:  # BN-ReLU shared by the branch and the projection shortcut
            pre = F.relu(self.bn1(x), inplace=True)
            shortcut = self.projection(pre)
            if not active:
                return shortcut
        out = self.residual(pre)
        if scale != 1.0:
            out = out * scale
        out += shortcut  # in place on the last conv's own output
        return out


class PreActBasicBlock(PreActBlock):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 (the stride in the first conv)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        changes = stride != 1 or in_planes != planes
        self.projection = conv1x1(in_planes, planes, stride) if changes else None

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn2(self.conv1(pre)), inplace=True)
        return self.conv2(out)


class PreActBottleneck(PreActBlock):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1, expansion 4 (the stride in the first
    1x1, as the paper's code)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = self.expansion * planes
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv1x1(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        changes = stride != 1 or in_planes != out_planes
        self.projection = conv1x1(in_planes, out_planes, stride) if changes else None

    def residual(self, pre: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn2(self.conv1(pre)), inplace=True)
        out = F.relu(self.bn3(self.conv2(out)), inplace=True)
        return self.conv3(out)


def _preact_resnet(block: type[PreActBlock], n: int, num_classes: int, image_size: int,
                   survival: str, p_last: float) -> ResNet:
    blocks: list[nn.Module] = []
    in_planes = PREACT_WIDTHS[0]
    for stage, planes in enumerate(PREACT_WIDTHS):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(block(in_planes, planes, stride))
            in_planes = planes * block.expansion
    final = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(inplace=True))
    return ResNet(stem(PREACT_WIDTHS[0], image_size, norm=False), blocks, in_planes,
                  num_classes, survival, p_last, final=final)


def preact_resnet(depth: int, *, num_classes: int = 10, image_size: int = 32,
                  shortcut: str = "A", survival: str = "none", p_last: float = 0.5) -> ResNet:
    """Pre-activation ResNet with basic units at depth 6n+2 (`shortcut` does not apply)."""
    networks.resolve_arch(depth, "preact")
    return _preact_resnet(PreActBasicBlock, (depth - 2) // 6, num_classes, image_size, survival,
                          p_last)


def preact_bottleneck_resnet(depth: int, *, num_classes: int = 10, image_size: int = 32,
                             shortcut: str = "A", survival: str = "none", p_last: float = 0.5
                             ) -> ResNet:
    """Pre-activation ResNet with bottleneck units at depth 9n+2: 164, 1001 (`shortcut` does not
    apply)."""
    networks.resolve_arch(depth, "preact-bottleneck")
    return _preact_resnet(PreActBottleneck, (depth - 2) // 9, num_classes, image_size, survival,
                          p_last)
