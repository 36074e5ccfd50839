"""The `imagenet` network family: torchvision's ImageNet ResNets, every block gated."""

from __future__ import annotations

import pytest
import torch
import torchvision

from sdnet import networks
from sdnet.models import build_model
from sdnet.networks import SpecError

TORCHVISION = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50,
               152: torchvision.models.resnet152}
PARAMS = {18: 11_689_512, 50: 25_557_032, 152: 60_192_808}  # REFERENCE.md (torchvision)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [18, 50, 152])
def test_parameter_count_equals_torchvision(depth: int) -> None:
    with torch.device("meta"):
        ours = build_model(depth, "imagenet", num_classes=1000, image_size=224)
        theirs = TORCHVISION[depth](weights=None)
    assert n_params(ours) == n_params(theirs) == PARAMS[depth]
    # Same layers in the same order: the parameter shapes match one for one.
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    # The gate adds no buffers: BN's only (3 each).
    assert len(list(ours.buffers())) == len(list(theirs.buffers()))


def test_resnet152_has_50_gated_blocks() -> None:
    with torch.device("meta"):
        model = build_model(152, "imagenet", num_classes=1000, image_size=224,
                            survival="linear", p_last=0.5)
    assert len(model.blocks) == model.gate.num_blocks == 50
    assert model.gate.probabilities[-1] == pytest.approx(0.5)


def test_forward_and_dropped_blocks() -> None:
    torch.manual_seed(0)
    model = build_model(18, "imagenet", num_classes=7, image_size=64, survival="uniform",
                        p_last=0.5)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert out.shape == (2, 7)
    computed, total = model.gate.stats()
    assert total == 8 and 0 <= computed <= 8
    out.sum().backward()
    model.eval()
    assert model(x).shape == (2, 7)


def test_depths_and_names() -> None:
    assert networks.network_name(152, "imagenet") == "imagenet-resnet152"
    assert networks.parse_network("imagenet-resnet18") == ("imagenet", 18)
    with pytest.raises(SpecError, match="18/34/50/101/152"):
        build_model(20, "imagenet")
    with pytest.raises(SpecError, match="at least 32"):
        build_model(18, "imagenet", image_size=16)
    # The CIFAR families still take 32 and 64 only.
    with pytest.raises(SpecError, match="image size"):
        build_model(20, "cifar", image_size=224)
