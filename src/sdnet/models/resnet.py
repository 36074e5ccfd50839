"""He et al.'s CIFAR ResNet and the seed's bottleneck ResNet, every block gated (stochastic depth).

Post-activation blocks (conv-BN-ReLU-conv-BN, ReLU after the addition), as in the stochastic
depth paper: H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1})) in training, b_l drawn by the network's
`Gate` (sdnet.models.gate); ReLU(p_l f_l + id) at test time (Eq. 5). Transition blocks are gated
too, as in the original code; a dropped transition still runs its shortcut.

Inputs are 32x32 (CIFAR) or 64x64 (Tiny ImageNet): a 64x64 image gets a stride-2 stem, so the
blocks see the same 32/16/8 maps either way (`sdnet.networks.stem_stride`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sdnet import networks
from sdnet.models.gate import Gate

__all__ = [
    "BasicBlock", "Bottleneck", "PadShortcut", "ResNet", "ResidualBlock", "bottleneck_resnet",
    "cifar_resnet", "conv1x1", "conv3x3", "init_weights", "initialisation", "projection", "stem",
]

CIFAR_WIDTHS = (16, 32, 64)
BOTTLENECK_WIDTHS = (64, 128, 256, 512)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def stem(width: int, image_size: int = 32, norm: bool = True) -> nn.Sequential:
    """3x3 conv (+ BN + ReLU unless `norm=False`), stride 2 for 64x64 images (32x32 maps out)."""
    conv = conv3x3(3, width, networks.stem_stride(image_size))
    if not norm:
        return nn.Sequential(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True))


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


# Shortcuts that map a non-negative input to a non-negative output (no parameters, no BN).
_SIGN_KEEPING = (nn.Identity, PadShortcut)


class ResidualBlock(nn.Module):
    """H = ReLU(scale * branch(x) + shortcut(x)); a dropped block never calls its branch.

    Subclasses define `branch` and `shortcut`; the network's gate decides `active` and `scale`.
    A dropped block returns ReLU(shortcut(x)). Its input x is a ReLU output (the stem's or the
    previous block's), so with an identity or option-A shortcut that ReLU is the identity, values
    and gradients alike: the block then returns the shortcut itself and skips a copy of the
    activations and its backward (the profile's per-dropped-block cost, benchmarks/README.md).
    """

    shortcut: nn.Module

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, active: bool = True, scale: float = 1.0) -> torch.Tensor:
        identity = self.shortcut(x)
        if not active:
            if isinstance(self.shortcut, _SIGN_KEEPING):
                return identity
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


# The initialisation a ResNet gets when it is built (settings bn_init, conv_init; the original's
# by default). A context variable rather than builder arguments, so a family's builder keeps its
# signature (sdnet.networks) and the draws happen where they always did: with bn_init "ones" and
# conv_init "fan_out" a seed gives the same weights as sdnet before these settings.
_INIT: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "sdnet_init", default=("uniform", "fan_in"))


@contextlib.contextmanager
def initialisation(bn_init: str = "uniform", conv_init: str = "fan_in") -> Iterator[None]:
    """ResNets built inside get this initialisation (see `init_weights`)."""
    if bn_init not in ("uniform", "ones") or conv_init not in ("fan_in", "fan_out"):
        raise ValueError(f"unknown initialisation bn_init={bn_init!r} conv_init={conv_init!r}")
    token = _INIT.set((bn_init, conv_init))
    try:
        yield
    finally:
        _INIT.reset(token)


def init_weights(model: nn.Module, bn_init: str = "uniform", conv_init: str = "fan_in") -> None:
    """The original code's initialisation by default (docs/recipe.md):
    - convolutions `nninit.kaiming, {gain = 'relu'}`: N(0, 2 / fan_in), fan_in = k*k*in_channels
      (main.lua:63, ResidualDrop.lua:19). Its conv biases start at 0 and stay there, since a
      batch norm follows each conv and passes them no gradient; sdnet's convs have none;
    - batch norm never re-initialised: Torch's `reset()` draws the scale from U(0, 1), bias 0;
    - the classifier (nn.Linear) at Torch's default, which PyTorch's equals: weight and bias
      U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (left as constructed).
    bn_init "ones" (scale 1: fb.resnet.torch's BNInit, torchvision) and conv_init "fan_out"
    (N(0, 2 / (k*k*out_channels)) and a zero classifier bias) are sdnet's earlier choices."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            mode = "fan_in" if conv_init == "fan_in" else "fan_out"
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            if bn_init == "uniform":
                nn.init.uniform_(m.weight, 0.0, 1.0)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and conv_init == "fan_out":
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """Stem, gated residual blocks, `final` (pre-activation nets: BN-ReLU), pool, fc.

    A `GatedNetwork` (sdnet.models.gate): `gate` drives `blocks`. Every family of sdnet builds
    this class; only the stem, the blocks and `final` differ.
    """

    def __init__(
        self,
        stem: nn.Module,
        blocks: list[nn.Module],
        features: int,
        num_classes: int = 10,
        survival: str = "none",
        p_last: float = 0.5,
        final: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.final = final if final is not None else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)
        self.gate = Gate(len(blocks), survival, p_last)
        init_weights(self, *_INIT.get())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gate.run(self.blocks, self.stem(x))
        return self.fc(torch.flatten(self.pool(self.final(out)), 1))


def cifar_resnet(depth: int, *, num_classes: int = 10, image_size: int = 32,
                 shortcut: str = "A", survival: str = "none", p_last: float = 0.5) -> ResNet:
    """He et al.'s CIFAR ResNet: 3 stages of n = (depth - 2) / 6 basic blocks, 16/32/64 wide."""
    networks.resolve_arch(depth, "cifar")
    n = (depth - 2) // 6
    blocks: list[nn.Module] = []
    in_planes = CIFAR_WIDTHS[0]
    for stage, planes in enumerate(CIFAR_WIDTHS):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
            in_planes = planes
    # The stem is made after the blocks (the RNG order of sdnet <= 0.1: same seed, same weights).
    return ResNet(stem(CIFAR_WIDTHS[0], image_size), blocks, in_planes, num_classes, survival,
                  p_last)


def bottleneck_resnet(depth: int, *, num_classes: int = 10, image_size: int = 32,
                      shortcut: str = "A", survival: str = "none", p_last: float = 0.5
                      ) -> ResNet:
    """The seed's Bottleneck ResNet for 32x32 maps: 3x3 stem, no max-pool, 64..512 wide.

    Its shortcuts are always the seed's projection (1x1 conv + BN): `shortcut` is ignored."""
    networks.resolve_arch(depth, "bottleneck")
    blocks: list[nn.Module] = []
    in_planes = BOTTLENECK_WIDTHS[0]
    stages = networks.BOTTLENECK_STAGES[depth]
    for stage, (count, planes) in enumerate(zip(stages, BOTTLENECK_WIDTHS)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(Bottleneck(in_planes, planes, stride))
            in_planes = planes * Bottleneck.expansion
    return ResNet(stem(BOTTLENECK_WIDTHS[0], image_size), blocks, in_planes, num_classes,
                  survival, p_last)
