"""CIFAR ResNets (He et al.), the seed's Bottleneck ResNet-50, and stochastic depth on every block.

Stochastic depth (Huang et al. 2016): in training mode each residual block l survives a mini-batch
with probability p_l; a dropped block is the identity-plus-ReLU of its shortcut and its residual
branch is not computed at all (no forward, no backward, BN running statistics untouched), which is
where the training-time saving comes from. At test time every block runs with its branch scaled by
p_l (Eq. 5). The gates are drawn on the CPU from `ResNet.gate_generator`, all L at once per forward
call, so gating never waits on the accelerator.

The depth -> architecture table is `sdnet.spec` (torch-free, documented there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sdnet import spec
from sdnet.spec import SpecError

SHORTCUTS = ("A", "B")
CIFAR_WIDTHS = (16, 32, 64)
BOTTLENECK_WIDTHS = (64, 128, 256, 512)

__all__ = [
    "SHORTCUTS",
    "BasicBlock",
    "Bottleneck",
    "PadShortcut",
    "ResNet",
    "ResidualBlock",
    "build_model",
    "survival_probabilities",
]


def survival_probabilities(
    num_blocks: int, rule: str, p_last: float, epoch: int = 0, epochs: int = 1
) -> list[float]:
    """Survival probability p_l of each block l = 1..L under `rule` (see docs/DESIGN.md).

    `epoch` is 0-based and only matters for `epoch-linear`, the seed tutorial's reading: one p for
    every block, 1 at the first epoch down to p_L at the last (a 1-epoch run stays at 1).
    """
    spec.check_survival(rule, p_last)
    if num_blocks < 1:
        raise SpecError(f"a ResNet needs at least one residual block, got {num_blocks}")
    if epochs < 1 or not 0 <= epoch < epochs:
        raise SpecError(f"epoch must be in 0..{epochs - 1} (0-based), got {epoch}")
    p_last = float(p_last)
    if rule == "linear":  # Eq. 4 of the paper: decays over depth, fixed over training
        return [1.0 - (l / num_blocks) * (1.0 - p_last) for l in range(1, num_blocks + 1)]
    if rule == "uniform":
        return [p_last] * num_blocks
    if rule == "epoch-linear":
        progress = epoch / (epochs - 1) if epochs > 1 else 0.0
        return [1.0 - progress * (1.0 - p_last)] * num_blocks
    return [1.0] * num_blocks


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: parameter-free transition shortcut, as in the original stochastic-depth code.

    Subsamples with a 1x1 average pool of stride 2 and appends zero channels; F.pad keeps the
    input's dtype (autocast) and memory format (channels_last).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=1, stride=stride)
        self.extra_channels = out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(self.pool(x), (0, 0, 0, 0, 0, self.extra_channels))


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Option B (and the seed's Bottleneck shortcut): 1x1 convolution + BN."""
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class ResidualBlock(nn.Module):
    """H = ReLU(scale * branch(x) + shortcut(x)); a dropped block never calls its branch.

    Subclasses define `branch` and `shortcut`; the ResNet decides `active` and `scale`.
    """

    shortcut: nn.Module

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, active: bool = True, scale: float = 1.0) -> torch.Tensor:
        identity = self.shortcut(x)
        if not active:
            return F.relu(identity)  # not in place: identity may be x, saved by the previous block
        out = self.branch(x)
        if scale != 1.0:
            out = out * scale
        out += identity  # in place on the branch's own BN output, as torchvision does
        return F.relu(out, inplace=True)


class BasicBlock(ResidualBlock):
    """He et al.'s CIFAR block: conv3x3-BN-ReLU-conv3x3-BN, shortcut option A or B."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1 and in_planes == planes:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = projection(in_planes, planes, stride)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """The seed tutorial's block: 1x1-3x3-1x1 with expansion 4, 1x1 conv + BN shortcut on change."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        if stride == 1 and in_planes == out_planes:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = projection(in_planes, out_planes, stride)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return self.bn3(self.conv3(out))


class ResNet(nn.Module):
    """Stem, gated residual blocks, global average pool, fc; owns survival rule and gate RNG."""

    def __init__(
        self,
        stem_width: int,
        blocks: list[ResidualBlock],
        features: int,
        num_classes: int = 10,
        survival: str = "none",
        p_last: float = 0.5,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(3, stem_width), nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)
        )
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)
        self.survival = survival
        self.p_last = float(p_last)
        self._probs = survival_probabilities(len(blocks), survival, p_last)
        self.gate_generator = torch.Generator().manual_seed(0)  # CPU: gates never sync a device
        self.last_active: list[bool] = []  # the latest training draw, one bool per block
        self.reset_gate_stats()
        self._init_weights()

    def _init_weights(self) -> None:
        """He init as in the original code: N(0, sqrt(2 / (k*k*out_channels))), BN 1/0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for block, active, scale in zip(self.blocks, self._gates(), self._scales()):
            out = block(out, active, scale)
        return self.fc(torch.flatten(self.pool(out), 1))

    def _gates(self) -> list[bool]:
        """One Bernoulli(p_l) draw per block for this mini-batch; all active in eval mode."""
        if not self.training:
            return [True] * len(self.blocks)
        draws = torch.rand(len(self._probs), generator=self.gate_generator).tolist()
        gates = [u < p for u, p in zip(draws, self._probs)]
        self.last_active = gates  # read by sdnet.gradients (issue 17's gate.last_active)
        self._computed += sum(gates)
        self._total += len(gates)
        return gates

    def _scales(self) -> list[float]:
        """Eq. 5 test-time scaling by p_l; none in training and never for `epoch-linear`."""
        if self.training or self.survival == "epoch-linear":
            return [1.0] * len(self.blocks)
        return list(self._probs)

    def seed_gates(self, seed: int) -> None:
        """Make the gate sequence reproducible (checkpoint it with gate_generator.get_state())."""
        self.gate_generator.manual_seed(seed)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Move `epoch-linear` to 0-based `epoch` of `epochs`; other rules do not depend on it."""
        probs = survival_probabilities(len(self.blocks), self.survival, self.p_last, epoch, epochs)
        if self.survival == "epoch-linear":
            self._probs = probs

    def survival_probabilities(self) -> list[float]:
        return list(self._probs)

    def expected_block_fraction(self) -> float:
        """Expected fraction of residual branches computed per training step: mean of p_l."""
        return sum(self._probs) / len(self._probs)

    def gate_stats(self) -> tuple[int, int]:
        """(branches computed, blocks seen) in training mode since reset_gate_stats()."""
        return self._computed, self._total

    def reset_gate_stats(self) -> None:
        self._computed = 0
        self._total = 0


def cifar_resnet(
    depth: int, num_classes: int = 10, shortcut: str = "A", survival: str = "none",
    p_last: float = 0.5,
) -> ResNet:
    """He et al.'s CIFAR ResNet: 3 stages of n = (depth - 2) / 6 basic blocks, 16/32/64 wide."""
    n = spec.cifar_blocks_per_stage(depth)
    blocks: list[ResidualBlock] = []
    in_planes = CIFAR_WIDTHS[0]
    for stage, planes in enumerate(CIFAR_WIDTHS):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
            in_planes = planes
    return ResNet(CIFAR_WIDTHS[0], blocks, in_planes, num_classes, survival, p_last)


def bottleneck_resnet(
    depth: int, num_classes: int = 10, survival: str = "none", p_last: float = 0.5
) -> ResNet:
    """The seed's Bottleneck ResNet for 32x32 inputs: 3x3 stem, no max-pool, 64..512 wide."""
    blocks: list[ResidualBlock] = []
    in_planes = BOTTLENECK_WIDTHS[0]
    for stage, (count, planes) in enumerate(zip(spec.BOTTLENECK_STAGES[depth], BOTTLENECK_WIDTHS)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(Bottleneck(in_planes, planes, stride))
            in_planes = planes * Bottleneck.expansion
    return ResNet(BOTTLENECK_WIDTHS[0], blocks, in_planes, num_classes, survival, p_last)


def build_model(
    depth: int,
    arch: str | None = None,
    *,
    num_classes: int = 10,
    shortcut: str = "A",
    survival: str = "none",
    p_last: float = 0.5,
) -> ResNet:
    """The network named by `depth` (and `arch`), see sdnet.spec; `shortcut` is CIFAR-only.

    The bottleneck family always uses the seed's projection shortcut, so `shortcut` is ignored there.
    """
    family = spec.resolve_arch(depth, arch)
    spec.check_survival(survival, p_last)
    if shortcut not in SHORTCUTS:
        raise SpecError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
    if num_classes < 1:
        raise SpecError(f"num_classes must be >= 1, got {num_classes}")
    if family == "bottleneck":
        return bottleneck_resnet(depth, num_classes, survival, p_last)
    return cifar_resnet(depth, num_classes, shortcut, survival, p_last)
