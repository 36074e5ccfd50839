"""sdnet.models.preact: pre-activation ResNets (BN-ReLU-conv, no ReLU after the addition), gated."""

from __future__ import annotations

import pytest
import torch
from gated_helpers import branch_calls, expected_gates, one_sgd_step, small_batch
from torch import nn

from sdnet.models import build_model
from sdnet.models.preact import PreActBasicBlock, PreActBottleneck


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch,depth,count,blocks", [
    ("preact", 110, 1_730_522, 54), ("preact", 20, 272_282, 9),
    ("preact-bottleneck", 164, 1_703_258, 54),  # the paper: 1.7 M
    ("preact-bottleneck", 1001, 10_327_706, 333),  # the paper: 10.2 M
])
def test_sizes(arch: str, depth: int, count: int, blocks: int) -> None:
    model = build_model(depth, arch)
    assert params(model) == count
    assert len(model.blocks) == blocks


def test_layout_follows_the_papers_cifar_code() -> None:
    model = build_model(164, "preact-bottleneck")
    assert isinstance(model.stem, nn.Sequential) and len(model.stem) == 1  # conv only
    assert isinstance(model.final[0], nn.BatchNorm2d) and isinstance(model.final[1], nn.ReLU)
    first, second = model.blocks[0], model.blocks[1]
    assert isinstance(first, PreActBottleneck)
    assert first.projection.out_channels == 64 and first.projection.stride == (1, 1)
    assert second.projection is None
    transition = model.blocks[18]
    assert transition.conv1.stride == (2, 2) and transition.projection.stride == (2, 2)
    assert [b.conv3.out_channels for b in model.blocks[::18]] == [64, 128, 256]
    basic = build_model(20, "preact")
    assert [b.projection is not None for b in basic.blocks] == [False] * 3 + [True, False,
                                                                              False] * 2


def test_unit_order_is_bn_relu_conv() -> None:
    block = PreActBasicBlock(16, 16)
    order = []
    for name in ("bn1", "conv1", "bn2", "conv2"):
        getattr(block, name).register_forward_hook(lambda *_, n=name: order.append(n))
    block(torch.randn(2, 16, 8, 8))
    assert order == ["bn1", "conv1", "bn2", "conv2"]


@pytest.mark.parametrize("block", [PreActBasicBlock(16, 16), PreActBottleneck(64, 16),
                                   PreActBasicBlock(16, 32, 2), PreActBottleneck(16, 16)])
def test_output_is_shortcut_plus_branch_without_a_final_relu(block: nn.Module) -> None:
    x = torch.randn(2, block.bn1.num_features, 8, 8)
    block.eval()
    with torch.no_grad():
        out = block(x)
        shortcut = x if block.projection is None else block.projection(torch.relu(block.bn1(x)))
        torch.testing.assert_close(out, shortcut + block.branch(x))
        torch.testing.assert_close(block(x, True, 0.25), shortcut + 0.25 * block.branch(x))
    assert (out < 0).any()  # no ReLU after the addition


def test_dropped_identity_unit_is_its_input_and_runs_nothing() -> None:
    block = PreActBasicBlock(16, 16).train()
    calls = []
    for m in block.modules():
        if m is not block:
            m.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 16, 8, 8)
    assert block(x, active=False) is x
    assert calls == []
    assert int(block.bn1.num_batches_tracked) == 0


def test_dropped_transition_unit_runs_only_its_shared_bn_relu_and_projection() -> None:
    block = PreActBottleneck(16, 16).train()
    x = torch.randn(2, 16, 8, 8)
    out = block(x, active=False)
    assert int(block.bn1.num_batches_tracked) == 1
    assert all(int(bn.num_batches_tracked) == 0 for bn in (block.bn2, block.bn3))
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x, active=False), block.projection(torch.relu(block.bn1(x))))
    assert out.shape == (2, 64, 8, 8)


@pytest.mark.parametrize("arch,depth", [("preact", 20), ("preact-bottleneck", 29)])
def test_dropped_units_compute_and_learn_nothing(arch: str, depth: int) -> None:
    model = build_model(depth, arch, survival="uniform", p_last=0.5).train()
    seed = 3
    gates = expected_gates(model, seed)
    assert any(gates) and not all(gates)
    counters = branch_calls(model)
    model.gate.manual_seed(seed)
    model(small_batch(size=16)).sum().backward()
    for block, gate, counter in zip(model.blocks, gates, counters):
        assert counter[0] == (1 if gate else 0)
        branch = [p.grad for name, p in block.named_parameters()
                  if not name.startswith(("projection", "bn1"))]
        assert all((g is not None) == gate for g in branch)
        if block.projection is None:
            assert (int(block.bn1.num_batches_tracked) == 1) == gate


def test_eval_runs_every_unit_scaled_by_p_l() -> None:
    model = build_model(20, "preact", survival="linear", p_last=0.5).eval()
    k = 5  # an identity unit
    block, p = model.blocks[k], model.gate.probabilities[k]
    seen = {}
    block.register_forward_hook(lambda _m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(small_batch())
        by_hand = seen["x"] + p * block.branch(seen["x"])
    assert p < 1
    torch.testing.assert_close(seen["out"], by_hand)


@pytest.mark.parametrize("arch,depth", [("preact", 20), ("preact-bottleneck", 29)])
def test_trains_one_step_in_bf16_and_channels_last_and_on_64x64(arch: str, depth: int) -> None:
    torch.manual_seed(0)
    model = build_model(depth, arch, survival="linear", p_last=0.5).train()
    model = model.to(memory_format=torch.channels_last)
    x = small_batch(4, 16).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    large = build_model(depth, arch, image_size=64, survival="linear", p_last=0.5)
    assert large.stem[0].stride == (2, 2)
    before = large.fc.weight.detach().clone()
    assert torch.isfinite(one_sgd_step(large, size=64, batch=2))
    assert not torch.equal(before, large.fc.weight)
