"""sdnet.models.resnet: CIFAR and bottleneck ResNets under the gate (real skipping, Eq. 5, sizes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gated_helpers import branch_calls, expected_gates, one_sgd_step, small_batch

from sdnet.models import build_model, resnet
from sdnet.models.resnet import BasicBlock

# --- gating in the network ----------------------------------------------------------------------


def test_blocks_survive_at_their_rate_and_gate_stats_count_it() -> None:
    model = build_model(20, survival="linear", p_last=0.5).train()
    model.gate.manual_seed(1)
    counters = branch_calls(model)
    x = small_batch(size=4)
    steps = 300
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    computed, total = model.gate.stats()
    assert total == steps * 9
    assert computed == sum(c[0] for c in counters)
    assert computed / total == pytest.approx(model.gate.expected_fraction(), abs=0.03)
    for counter, p in zip(counters, model.gate.probabilities):
        assert counter[0] / steps == pytest.approx(p, abs=0.1)  # transitions included
    model.gate.reset_stats()
    assert model.gate.stats() == (0, 0)


def test_eval_mode_runs_every_block_and_counts_nothing() -> None:
    model = build_model(20, survival="uniform", p_last=0.1).eval()
    counters = branch_calls(model)
    with torch.no_grad():
        model(small_batch())
    assert [c[0] for c in counters] == [1] * 9
    assert model.gate.stats() == (0, 0)


@pytest.mark.parametrize("depth", [20, 50])
def test_dropped_blocks_compute_nothing_and_learn_nothing(depth: int) -> None:
    model = build_model(depth, survival="uniform", p_last=0.5).train()
    seed = 3
    gates = expected_gates(model, seed)
    assert any(gates) and not all(gates)
    counters = branch_calls(model)
    bn_before = [block.bn1.running_mean.clone() for block in model.blocks]
    model.gate.manual_seed(seed)
    model(small_batch(size=16)).sum().backward()
    assert model.gate.last_active == gates

    for block, gate, counter, before in zip(model.blocks, gates, counters, bn_before):
        assert counter[0] == (1 if gate else 0)
        grads = [p.grad for name, p in block.named_parameters() if not name.startswith("shortcut")]
        if gate:
            assert all(g is not None for g in grads)
            assert not torch.equal(block.bn1.running_mean, before)
        else:
            assert all(g is None for g in grads)
            assert torch.equal(block.bn1.running_mean, before)
            assert int(block.bn1.num_batches_tracked) == 0


@pytest.mark.parametrize("in_planes,planes,stride,shortcut", [
    (16, 16, 1, "A"), (16, 32, 2, "A"), (16, 32, 2, "B"),
])
def test_dropped_block_is_relu_of_shortcut(in_planes, planes, stride, shortcut) -> None:
    """On the non-negative inputs a block gets (a ReLU's output), without calling the branch."""
    block = BasicBlock(in_planes, planes, stride=stride, shortcut=shortcut)
    calls = []
    block.conv1.register_forward_hook(lambda *_: calls.append(1))
    x = torch.relu(torch.randn(2, in_planes, 8, 8))
    out = block(x, active=False)
    assert calls == []
    assert out.shape == (2, planes, 8 // stride, 8 // stride)
    assert torch.equal(out, torch.relu(block.shortcut(x)))
    if shortcut == "B":
        assert (block.shortcut(x) < 0).any()  # the projection's BN: its ReLU is real
    if stride == 1:
        assert out is x  # identity shortcut: no copy at all


def test_skipping_the_relu_of_a_dropped_block_is_exact(monkeypatch) -> None:
    """Training steps (bf16 autocast, channels_last, many drops) with dropped blocks returning
    the shortcut itself equal those with the literal ReLU(shortcut), bit for bit."""
    def train_steps(model: torch.nn.Module) -> tuple[list[torch.Tensor], dict]:
        model = model.to(memory_format=torch.channels_last).train()
        model.gate.manual_seed(4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(2)
        losses = []
        for _ in range(3):
            x = torch.randn(4, 3, 16, 16, generator=g).to(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), torch.arange(4))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return losses, model.state_dict()

    def fresh() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(20, survival="uniform", p_last=0.3)

    fast_losses, fast = train_steps(fresh())
    monkeypatch.setattr(resnet, "_SIGN_KEEPING", ())
    slow_losses, slow = train_steps(fresh())
    assert torch.equal(torch.stack(fast_losses), torch.stack(slow_losses))
    assert all(torch.equal(fast[k], slow[k]) for k in fast)


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    block = BasicBlock(16, 32, stride=2, shortcut="A")
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    assert list(block.shortcut.parameters()) == []


def test_eval_output_is_eq5() -> None:
    model = build_model(20, survival="linear", p_last=0.5).eval()
    k = 4
    block, p = model.blocks[k], model.gate.probabilities[k]
    seen = {}
    block.register_forward_hook(lambda _m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(small_batch())
        by_hand = torch.relu(p * block.branch(seen["x"]) + seen["x"])
    assert p < 1
    torch.testing.assert_close(seen["out"], by_hand)


def test_eval_scaling_changes_the_output_only_for_scaled_rules() -> None:
    x = small_batch()
    outputs = {}
    for rule in ("none", "linear", "epoch-linear"):
        torch.manual_seed(0)
        model = build_model(8, survival=rule, p_last=0.5).eval()
        model.gate.set_epoch(9, 10)
        with torch.no_grad():
            outputs[rule] = model(x)
    assert not torch.allclose(outputs["linear"], outputs["none"])
    torch.testing.assert_close(outputs["epoch-linear"], outputs["none"])  # never scaled


def test_gates_are_reproducible_per_seed() -> None:
    model = build_model(20, survival="linear", p_last=0.5).train()
    counters = branch_calls(model)

    def gate_pattern(seed: int) -> list[int]:
        model.gate.manual_seed(seed)
        patterns = []
        with torch.no_grad():
            for _ in range(5):
                before = [c[0] for c in counters]
                model(small_batch(size=4))
                patterns += [c[0] - b for c, b in zip(counters, before)]
        return patterns

    assert gate_pattern(7) == gate_pattern(7)
    assert gate_pattern(7) != gate_pattern(8)


# --- architectures ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth,shortcut,params", [
    (20, "A", 269_722), (56, "A", 853_018), (110, "A", 1_727_962), (110, "B", 1_730_714),
])
def test_parameter_counts(depth: int, shortcut: str, params: int) -> None:
    model = build_model(depth, shortcut=shortcut)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.blocks) == (depth - 2) // 2


def test_resnet50_bottleneck_builds_and_trains_one_step() -> None:
    torch.manual_seed(0)
    model = build_model(50, survival="linear", p_last=0.5)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(23.5e6, rel=0.01)
    assert len(model.blocks) == 16
    assert model.blocks[0].shortcut[0].kernel_size == (1, 1)  # seed's projection shortcut
    model.gate.manual_seed(0)
    fc_before = model.fc.weight.detach().clone()
    assert torch.isfinite(one_sgd_step(model))
    assert not torch.equal(model.fc.weight, fc_before)


@pytest.mark.parametrize("depth,arch", [(20, "cifar"), (50, "bottleneck")])
def test_64x64_images_get_a_stride_2_stem_and_the_same_maps(depth: int, arch: str) -> None:
    small, large = build_model(depth, arch), build_model(depth, arch, image_size=64)
    assert large.stem[0].stride == (2, 2) and small.stem[0].stride == (1, 1)
    assert sum(p.numel() for p in large.parameters()) == sum(p.numel() for p in small.parameters())
    maps = []
    hook = [b.register_forward_hook(lambda _m, args, out: maps.append(out.shape[-1]))
            for b in large.blocks]
    with torch.no_grad():
        out = large.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)
    assert maps[0] == 32 and maps[-1] in (4, 8) and set(maps) <= {32, 16, 8, 4}
    for h in hook:
        h.remove()


@pytest.mark.parametrize("train", [False, True])
def test_channels_last_matches_contiguous(train: bool) -> None:
    model = build_model(20, survival="linear", p_last=0.5).train(train)
    x = small_batch(4, 16)
    with torch.no_grad():
        model.gate.manual_seed(2)
        dense = model(x)
        model.to(memory_format=torch.channels_last)
        model.gate.manual_seed(2)
        last = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(last, dense, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_with_dropped_transitions() -> None:
    model = build_model(20, survival="uniform", p_last=0.5).train()
    model.gate.manual_seed(3)
    x = small_batch(4, 16).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert out.shape == (4, 10) and torch.isfinite(out.float()).all()
