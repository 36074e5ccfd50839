"""Helpers shared by the model tests (test_gate, test_resnet, test_preact, test_networks)."""

from __future__ import annotations

import torch
from torch import nn


def small_batch(n: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def branch_calls(model: nn.Module) -> list[list[int]]:
    """Per block, a one-item counter of calls of its branch's first convolution (`conv1`; hooks
    stay on the model): 1 per computed branch, 0 for a dropped block."""
    counters: list[list[int]] = []
    for block in model.blocks:
        counter = [0]
        block.conv1.register_forward_hook(lambda *_, c=counter: c.__setitem__(0, c[0] + 1))
        counters.append(counter)
    return counters


def expected_gates(model: nn.Module, seed: int) -> list[bool]:
    """The documented draw: L uniforms at once from a CPU generator, gate = u < p_l."""
    draws = torch.rand(len(model.blocks), generator=torch.Generator().manual_seed(seed))
    return [u < p for u, p in zip(draws.tolist(), model.gate.probabilities)]


def one_sgd_step(model: nn.Module, size: int = 32, batch: int = 4) -> torch.Tensor:
    """One cross-entropy SGD step on random data; returns the loss."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    y = torch.arange(batch) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.detach()


def tiny_family_builder(depth: int, *, num_classes: int = 10, image_size: int = 32,
                        shortcut: str = "A", survival: str = "none", p_last: float = 0.5
                        ) -> nn.Module:
    """A registered family's builder as docs/DESIGN.md describes it: `depth` blocks of 16."""
    from sdnet.models.resnet import BasicBlock, ResNet, stem

    blocks = [BasicBlock(16, 16) for _ in range(depth)]
    return ResNet(stem(16, image_size), blocks, 16, num_classes, survival, p_last)


def ungated_builder(depth: int, **_: object) -> nn.Module:
    """A builder that forgets the gate."""
    return nn.Linear(3, depth)
