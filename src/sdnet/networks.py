"""Network families by name (torch-free): which depths each accepts and how a run names it.

The Snakemake layer imports this at parse time (depth 57 must stop Snakemake before any job),
`sdnet status` and the report read it, and `sdnet.models` builds the networks: each `Family`
names its builder as `"module:function"`, imported only when a network is built. Adding a family
is one `Family(...)` passed to `register_family` and one builder function (docs/DESIGN.md,
"Adding a network family").

A run's network is (family, depth). Its name, the run folder's component and the reports' key,
is `resnet<depth>` for the depth's default family (so folders trained before families existed
keep their names) and `<family>-resnet<depth>` for any other: `preact-resnet110`,
`preact-bottleneck-resnet164`, `cifar-resnet50`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sdnet.errors import SdnetError


class SpecError(SdnetError, ValueError):
    """A run setting that names no network or rule; the message says what is valid."""


@dataclass(frozen=True)
class Family:
    """One network family: its name (`--arch`), the depths it builds and its builder."""

    name: str                      # "preact": the --arch value and the folder prefix
    title: str                     # "pre-activation ResNet": what reports print
    builder: str                   # "sdnet.models.preact:preact_resnet", imported on build
    depth_rule: str                # "6n+2": for messages
    accepts: Callable[[int], bool]  # whether the family has a network of this depth
    examples: tuple[int, ...]      # depths shown in messages
    # Input sizes it takes: the CIFAR-style families IMAGE_SIZES (their stem's stride follows
    # the size); None: any size of at least 32 (a global-pool network such as ImageNet's).
    image_sizes: tuple[int, ...] | None = None


def _six_n_plus_two(depth: int) -> bool:
    return depth >= 8 and (depth - 2) % 6 == 0


def _nine_n_plus_two(depth: int) -> bool:
    return depth >= 11 and (depth - 2) % 9 == 0


# Bottleneck ResNets for 32x32 inputs: depth -> blocks per stage (3 convs per block + stem + fc).
BOTTLENECK_STAGES: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
# Depths whose default family is `bottleneck`; every other depth defaults to `cifar`.
DEFAULT_BOTTLENECK_DEPTHS = (50,)
# The CIFAR ResNet's transition shortcut: A = avg-pool + zero channels (the paper's), B = 1x1
# conv + BN. The other families have one kind each (docs/DESIGN.md).
SHORTCUTS = ("A", "B")
# Input sizes every family takes: the stem's stride is image_size / 32, so the blocks always see
# 32x32, 16x16 and 8x8 maps (a 3x3 stem of stride > 2 would skip pixels).
IMAGE_SIZES = (32, 64)

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to the registry (a name may be registered once)."""
    if family.name in FAMILIES:
        raise ValueError(f"network family {family.name!r} is already registered")
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", family.name) or "resnet" in family.name:
        raise ValueError(f"family name {family.name!r}: lower-case words joined by '-', "
                         "without 'resnet' (it is part of the network name)")
    FAMILIES[family.name] = family
    return family


register_family(Family(
    "cifar", "ResNet", "sdnet.models.resnet:cifar_resnet", "6n+2", _six_n_plus_two,
    (20, 32, 44, 56, 110, 1202), IMAGE_SIZES))
register_family(Family(
    "bottleneck", "bottleneck ResNet", "sdnet.models.resnet:bottleneck_resnet",
    "/".join(map(str, BOTTLENECK_STAGES)), lambda depth: depth in BOTTLENECK_STAGES,
    tuple(BOTTLENECK_STAGES), IMAGE_SIZES))
register_family(Family(
    "preact", "pre-activation ResNet", "sdnet.models.preact:preact_resnet", "6n+2",
    _six_n_plus_two, (20, 56, 110, 1202), IMAGE_SIZES))
register_family(Family(
    "preact-bottleneck", "pre-activation bottleneck ResNet",
    "sdnet.models.preact:preact_bottleneck_resnet", "9n+2", _nine_n_plus_two, (164, 1001),
    IMAGE_SIZES))
# torchvision's ImageNet ResNets (7x7 stride-2 stem, max-pool, four stages), every block gated.
IMAGENET_STAGES: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
register_family(Family(
    "imagenet", "ImageNet ResNet", "sdnet.models.imagenet:imagenet_resnet",
    "/".join(map(str, IMAGENET_STAGES)), lambda depth: depth in IMAGENET_STAGES,
    tuple(IMAGENET_STAGES)))


def families() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(FAMILIES)


def family(name: str) -> Family:
    """The family called `name`; SpecError listing the registered ones otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown architecture {name!r}; choose one of "
                        f"{', '.join(FAMILIES)}") from None


def default_arch(depth: int) -> str:
    """The family a bare depth means: bottleneck for 50, cifar (6n+2) otherwise."""
    return "bottleneck" if depth in DEFAULT_BOTTLENECK_DEPTHS else "cifar"


def valid_depths_text(arch: str | None = None) -> str:
    """The depths one family (or, without `arch`, every family) accepts, for error messages."""
    shown = [family(arch)] if arch is not None else list(FAMILIES.values())
    parts = [f"{f.name}: {f.depth_rule} ({', '.join(map(str, f.examples))}, ...)"
             for f in shown]
    return "valid depths: " + "; ".join(parts)


def resolve_arch(depth: int, arch: str | None = None) -> str:
    """The family of a run at `depth` (`arch`, or the depth's default); SpecError if none fits."""
    if arch is not None:
        family(arch)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise SpecError(f"depth must be a positive integer, got {depth!r}; {valid_depths_text()}")
    name = default_arch(depth) if arch is None else arch
    if not FAMILIES[name].accepts(depth):
        what = f"{FAMILIES[name].title} (--arch {name})" if arch is not None else "architecture"
        raise SpecError(f"depth {depth} fits no {what}; "
                        f"{valid_depths_text(arch)}")
    return name


def check_image_size(arch: str, image_size: int) -> None:
    """SpecError unless family `arch` takes square `image_size` inputs."""
    sizes = family(arch).image_sizes
    if sizes is None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
            raise SpecError(f"image size {image_size!r}: the {arch} family needs at least 32x32")
        return
    stem_stride(image_size)


def stem_stride(image_size: int) -> int:
    """The stem's stride for square `image_size` inputs (1 for 32, 2 for 64); SpecError else."""
    if image_size not in IMAGE_SIZES or isinstance(image_size, bool):
        raise SpecError(f"image size {image_size!r} is not one sdnet's networks take; "
                        f"choose one of {', '.join(map(str, IMAGE_SIZES))} (a 64x64 image gets a "
                        "stride-2 stem)")
    return int(image_size) // 32


def network_name(depth: int, arch: str | None = None) -> str:
    """`resnet<depth>` for the depth's default family, `<family>-resnet<depth>` otherwise."""
    name = resolve_arch(depth, arch)
    return f"resnet{depth}" if name == default_arch(depth) else f"{name}-resnet{depth}"


NETWORK_PATTERN = r"(?:(?P<arch>[a-z][a-z0-9-]*?)-)?resnet(?P<depth>\d+)"


def parse_network(name: str) -> tuple[str, int]:
    """(family, depth) of a network name made by `network_name`; SpecError otherwise."""
    match = re.fullmatch(NETWORK_PATTERN, name)
    if match is None:
        raise SpecError(f"{name!r} is not a network name (resnet<depth> or "
                        "<family>-resnet<depth>)")
    depth = int(match["depth"])
    arch = resolve_arch(depth, match["arch"])
    if network_name(depth, arch) != name:
        raise SpecError(f"{name!r} is not a network name: write it {network_name(depth, arch)!r}")
    return arch, depth
