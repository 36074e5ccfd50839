"""sdnet.train.gradients: the per-block mean |gradient| meter, exact against hand-set gradients and
against the network's own gradients; blocks that never ran; its checkpoint state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sdnet import models
from sdnet.errors import SdnetError
from sdnet.train.gradients import GradientMeter


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, bias=False)


def blocks_with_grads(values: list[float]) -> list[Block]:
    """Blocks whose conv1 gradient is the constant `value` (mean |grad| = |value|)."""
    blocks = [Block(2), Block(4), Block(2)]
    for block, value in zip(blocks, values):
        block.conv1.weight.grad = torch.full_like(block.conv1.weight, value)
    return blocks


def set_grads(blocks: list[Block], values: list[float]) -> None:
    for block, value in zip(blocks, values):
        block.conv1.weight.grad.fill_(value)


def test_means_over_the_steps_each_block_ran() -> None:
    blocks = blocks_with_grads([0.0, 0.0, 0.0])
    meter = GradientMeter(blocks)
    set_grads(blocks, [1.0, -2.0, 5.0])
    meter.after_backward([True, True, False])
    set_grads(blocks, [3.0, 4.0, 7.0])
    meter.after_backward([True, False, False])
    figures = meter.epoch_figures()
    assert figures.means == pytest.approx((2.0, 2.0, None))  # (1 + 3) / 2, |-2| / 1, never ran
    assert figures.means[2] is None
    assert figures.steps == (2, 1, 0)
    assert figures.first_conv == pytest.approx(2.0)
    assert figures.rows() == [[pytest.approx(2.0), 2], [pytest.approx(2.0), 1], [None, 0]]
    # the next epoch starts from zero
    set_grads(blocks, [0.5, 0.5, 0.5])
    meter.after_backward([False, False, True])
    assert meter.epoch_figures().means == (None, None, pytest.approx(0.5))


def test_first_block_only() -> None:
    blocks = blocks_with_grads([2.0, 3.0, 4.0])
    meter = GradientMeter(blocks, per_block=False)
    meter.after_backward([True, True, True])
    figures = meter.epoch_figures()
    assert figures.means == pytest.approx((2.0,)) and figures.steps == (1,)


def test_state_mid_epoch_round_trips() -> None:
    blocks = blocks_with_grads([1.0, 2.0, 3.0])
    meter = GradientMeter(blocks)
    meter.after_backward([True, False, True])
    state = meter.state_dict()
    resumed = GradientMeter(blocks)
    resumed.load_state_dict(state)
    for m in (meter, resumed):
        m.after_backward([True, True, False])
    assert resumed.epoch_figures() == meter.epoch_figures()
    fresh = GradientMeter(blocks)
    fresh.load_state_dict(None)  # a checkpoint from before the meter
    assert fresh.epoch_figures().steps == (0, 0, 0)
    with pytest.raises(SdnetError, match="another network"):
        GradientMeter(blocks[:2]).load_state_dict(state)


def test_a_block_without_conv1_is_one_clear_error() -> None:
    with pytest.raises(SdnetError, match="block 2 .*has no conv1"):
        GradientMeter([Block(2), nn.Identity()])
    with pytest.raises(SdnetError, match="without residual blocks"):
        GradientMeter([])


@pytest.mark.parametrize(("depth", "arch"), [(8, None), (50, None), (20, "preact"),
                                           (11, "preact-bottleneck")])
def test_matches_the_networks_own_gradients(depth: int, arch: str | None) -> None:
    """One real training step (every family's blocks): the meter's figure of each block
    that ran is mean(|conv1.weight.grad|) (to float32 summation order); a dropped block's
    is None."""
    torch.manual_seed(0)
    model = models.build_model(depth, arch, survival="linear", p_last=0.5).train()
    model.gate.manual_seed(3)
    meter = GradientMeter(model.blocks)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    nn.functional.cross_entropy(model(x), y).backward()
    active = model.gate.last_active
    assert len(active) == len(model.blocks) and any(active)
    meter.after_backward(active)
    figures = meter.epoch_figures()
    for block, on, mean, steps in zip(model.blocks, active, figures.means, figures.steps):
        if on:
            expected = block.conv1.weight.grad.double().abs().mean().item()
            # float32 sums of ~150k values in another order (threads): a few 1e-4 apart
            assert mean == pytest.approx(expected, rel=1e-3) and mean > 0 and steps == 1
        else:
            assert mean is None and steps == 0
