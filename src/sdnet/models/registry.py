"""`build_model`: a network by family and depth, like torchvision's `get_model` / timm's
`create_model`.

The families themselves (name, depths, builder) are registered in `sdnet.networks`, torch-free, so
the Snakefile and `sdnet status` know them without importing torch; a family's builder is a
`"module:function"` string, imported here only when a network of that family is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from sdnet import networks
from sdnet.errors import SdnetError
from sdnet.models.gate import GatedNetwork
from sdnet.networks import SpecError

__all__ = ["build_model", "builder"]


def builder(arch: str) -> Callable[..., nn.Module]:
    """The builder function of family `arch` (imported from its `"module:function"`)."""
    family = networks.family(arch)
    module_name, _, function = family.builder.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as err:
        raise SdnetError(f"network family {arch!r}: its builder {family.builder!r} cannot be "
                         f"loaded ({type(err).__name__}: {err})") from None


def build_model(
    depth: int,
    arch: str | None = None,
    *,
    num_classes: int = 10,
    image_size: int = 32,
    shortcut: str = "A",
    survival: str = "none",
    p_last: float = 0.5,
    bn_init: str = "uniform",
    conv_init: str = "fan_in",
) -> GatedNetwork:
    """The network of family `arch` (default: the depth's, `sdnet.networks.default_arch`) at
    `depth`, for `image_size` x `image_size` inputs (32, or 64 with a stride-2 stem), gated by
    `survival` / `p_last`. `shortcut` (A/B) applies to the CIFAR ResNet only. `bn_init` /
    `conv_init`: the initialisation (sdnet.models.resnet.init_weights; the original's by
    default), for every family built on sdnet's ResNet class.

    Every bad setting is one SpecError line (an unknown family lists the registered ones, a depth
    the family lacks states its rule)."""
    name = networks.resolve_arch(depth, arch)
    if shortcut not in networks.SHORTCUTS:
        raise SpecError(f"unknown shortcut {shortcut!r}; choose one of "
                        f"{', '.join(networks.SHORTCUTS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    networks.check_image_size(name, image_size)
    from sdnet.models.resnet import initialisation

    with initialisation(bn_init, conv_init):
        model = builder(name)(depth, num_classes=num_classes, image_size=image_size,
                              shortcut=shortcut, survival=survival, p_last=p_last)
    if not isinstance(model, nn.Module) or not isinstance(model, GatedNetwork):
        raise TypeError(f"the builder of family {name!r} returned {type(model).__name__}, not a "
                        "GatedNetwork (an nn.Module with .gate and .blocks)")
    return model
