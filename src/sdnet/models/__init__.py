"""The networks sdnet trains, every one gated for stochastic depth (contract: docs/DESIGN.md).

- `gate`: the stochastic-depth gate (survival rules, per-batch draw, test-time scaling, counts,
  RNG state) and the `GatedNetwork` protocol the trainer and the checkpoint talk to;
- `resnet`: He et al.'s CIFAR ResNet and the seed's bottleneck ResNet (post-activation);
- `preact`: pre-activation ResNets (He et al. 2016, "Identity mappings"), basic and bottleneck;
- `registry`: `build_model(depth, arch, ...)`, through the torch-free family registry
  `sdnet.networks`.
"""

from sdnet.models.gate import Gate, GatedBlock, GatedNetwork, survival_probabilities
from sdnet.models.registry import build_model, builder
from sdnet.networks import IMAGE_SIZES, SHORTCUTS

__all__ = ["IMAGE_SIZES", "SHORTCUTS", "Gate", "GatedBlock", "GatedNetwork", "build_model",
           "builder", "survival_probabilities"]
