"""Networks and stochastic depth: Eq. 4 / Eq. 5, real skipping of dropped branches, sizes, RNG."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from sdnet.models import BasicBlock, ResNet, build_model, survival_probabilities
from sdnet.spec import SpecError


def small_batch(n: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def count_branch_convs(model: ResNet) -> list[list[int]]:
    """Per block, a one-item counter of branch-convolution calls (hooks stay on the model)."""
    counters: list[list[int]] = []
    for block in model.blocks:
        counter = [0]
        for conv in (block.conv1, block.conv2):
            conv.register_forward_hook(lambda *_, c=counter: c.__setitem__(0, c[0] + 1))
        counters.append(counter)
    return counters


def expected_gates(model: ResNet, seed: int) -> list[bool]:
    """The documented draw: L uniforms at once from a CPU generator, gate = u < p_l."""
    draws = torch.rand(len(model.blocks), generator=torch.Generator().manual_seed(seed))
    return [u < p for u, p in zip(draws.tolist(), model.survival_probabilities())]


# --- survival rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("num_blocks", [1, 9, 54, 600])
@pytest.mark.parametrize("p_last", [0.5, 0.2, 0.8, 1.0])
def test_linear_rule_is_eq4(num_blocks: int, p_last: float) -> None:
    probs = survival_probabilities(num_blocks, "linear", p_last)
    assert len(probs) == num_blocks
    for l, p in enumerate(probs, start=1):
        assert p == pytest.approx(1 - l / num_blocks * (1 - p_last))
    assert probs[-1] == pytest.approx(p_last)
    assert all(a >= b for a, b in itertools.pairwise(probs))


@pytest.mark.parametrize("num_blocks", [9, 27, 54])
def test_expected_depth_is_3L_minus_1_over_4(num_blocks: int) -> None:
    assert sum(survival_probabilities(num_blocks, "linear", 0.5)) == pytest.approx(
        (3 * num_blocks - 1) / 4)


def test_resnet110_expects_40_25_of_54_blocks() -> None:
    model = build_model(110, survival="linear", p_last=0.5)
    assert len(model.blocks) == 54
    assert sum(model.survival_probabilities()) == pytest.approx(40.25)
    assert model.expected_block_fraction() == pytest.approx(40.25 / 54)


def test_none_and_uniform_rules() -> None:
    assert survival_probabilities(5, "none", 0.5) == [1.0] * 5
    assert survival_probabilities(5, "uniform", 0.3) == [0.3] * 5
    assert build_model(20).expected_block_fraction() == 1.0


def test_epoch_linear_decays_over_epochs_not_depth() -> None:
    first = survival_probabilities(9, "epoch-linear", 0.5, epoch=0, epochs=11)
    middle = survival_probabilities(9, "epoch-linear", 0.5, epoch=5, epochs=11)
    last = survival_probabilities(9, "epoch-linear", 0.5, epoch=10, epochs=11)
    assert first == [1.0] * 9
    assert middle == pytest.approx([0.75] * 9)
    assert last == pytest.approx([0.5] * 9)


@pytest.mark.parametrize("rule,p_last,epoch,epochs", [
    ("bogus", 0.5, 0, 1), ("linear", 0.0, 0, 1), ("linear", 1.5, 0, 1),
    ("epoch-linear", 0.5, 3, 3), ("epoch-linear", 0.5, -1, 3),
])
def test_bad_survival_settings_raise(rule: str, p_last: float, epoch: int, epochs: int) -> None:
    with pytest.raises(SpecError):
        survival_probabilities(4, rule, p_last, epoch, epochs)


# --- gating in the network ----------------------------------------------------------------------

def test_blocks_survive_at_their_rate_and_gate_stats_count_it() -> None:
    model = build_model(20, survival="linear", p_last=0.5).train()
    model.seed_gates(1)
    counters = count_branch_convs(model)
    x = small_batch(size=4)
    steps = 300
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    computed, total = model.gate_stats()
    assert total == steps * 9
    assert computed == sum(c[0] for c in counters) // 2  # two branch convs per computed block
    assert computed / total == pytest.approx(model.expected_block_fraction(), abs=0.03)
    for counter, p in zip(counters, model.survival_probabilities()):
        assert counter[0] / 2 / steps == pytest.approx(p, abs=0.1)  # transitions included
    model.reset_gate_stats()
    assert model.gate_stats() == (0, 0)


def test_eval_mode_runs_every_block_and_counts_nothing() -> None:
    model = build_model(20, survival="uniform", p_last=0.1).eval()
    counters = count_branch_convs(model)
    with torch.no_grad():
        model(small_batch())
    assert [c[0] for c in counters] == [2] * 9
    assert model.gate_stats() == (0, 0)


def test_dropped_blocks_compute_nothing_and_learn_nothing() -> None:
    model = build_model(20, survival="uniform", p_last=0.5).train()
    seed = 3
    gates = expected_gates(model, seed)
    assert any(gates) and not all(gates)
    counters = count_branch_convs(model)
    bn_before = [block.bn1.running_mean.clone() for block in model.blocks]
    model.seed_gates(seed)
    model(small_batch()).sum().backward()

    for block, gate, counter, before in zip(model.blocks, gates, counters, bn_before):
        assert counter[0] == (2 if gate else 0)
        grads = [p.grad for p in block.parameters()]
        if gate:
            assert all(g is not None for g in grads)
            assert not torch.equal(block.bn1.running_mean, before)
        else:
            assert all(g is None for g in grads)
            assert torch.equal(block.bn1.running_mean, before)
            assert int(block.bn1.num_batches_tracked) == 0


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_dropped_block_is_relu_of_shortcut(shortcut: str) -> None:
    block = BasicBlock(16, 32, stride=2, shortcut=shortcut)
    calls = []
    block.conv1.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 16, 8, 8)
    out = block(x, active=False)
    assert calls == []
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out, torch.relu(block.shortcut(x)))


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
    block, p = model.blocks[k], model.survival_probabilities()[k]
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
        model.set_epoch(9, 10)
        with torch.no_grad():
            outputs[rule] = model(x)
    assert not torch.allclose(outputs["linear"], outputs["none"])
    torch.testing.assert_close(outputs["epoch-linear"], outputs["none"])  # never scaled


def test_epoch_linear_model_shares_one_p_that_decays() -> None:
    model = build_model(20, survival="epoch-linear", p_last=0.5)
    assert model.survival_probabilities() == [1.0] * 9
    model.set_epoch(2, 5)
    assert model.survival_probabilities() == pytest.approx([0.75] * 9)
    model.set_epoch(4, 5)
    assert model.survival_probabilities() == pytest.approx([0.5] * 9)
    linear = build_model(20, survival="linear", p_last=0.5)
    before = linear.survival_probabilities()
    linear.set_epoch(4, 5)
    assert linear.survival_probabilities() == before


def test_gates_are_reproducible_per_seed() -> None:
    model = build_model(20, survival="linear", p_last=0.5).train()
    counters = count_branch_convs(model)

    def gate_pattern(seed: int) -> list[int]:
        model.seed_gates(seed)
        patterns = []
        with torch.no_grad():
            for _ in range(5):
                before = [c[0] for c in counters]
                model(small_batch(size=4))
                patterns += [c[0] - b for c, b in zip(counters, before)]
        return patterns

    assert gate_pattern(7) == gate_pattern(7)
    assert gate_pattern(7) != gate_pattern(8)
    model.seed_gates(5)
    state = model.gate_generator.get_state()
    first = torch.rand(9, generator=model.gate_generator)
    model.gate_generator.set_state(state)
    assert torch.equal(torch.rand(9, generator=model.gate_generator), first)


# --- architectures ------------------------------------------------------------------------------

@pytest.mark.parametrize("depth,shortcut,params", [
    (20, "A", 269_722), (56, "A", 853_018), (110, "A", 1_727_962), (110, "B", 1_730_714),
])
def test_parameter_counts(depth: int, shortcut: str, params: int) -> None:
    model = build_model(depth, shortcut=shortcut)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.blocks) == (depth - 2) // 2


def test_option_b_has_more_parameters_than_a() -> None:
    def count(shortcut: str) -> int:
        return sum(p.numel() for p in build_model(20, shortcut=shortcut).parameters())

    assert count("B") > count("A")


def test_resnet50_bottleneck_builds_and_trains_one_step() -> None:
    torch.manual_seed(0)
    model = build_model(50, survival="linear", p_last=0.5)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(23.5e6, rel=0.01)
    assert len(model.blocks) == 16
    assert model.blocks[0].shortcut[0].kernel_size == (1, 1)  # seed's projection shortcut
    model.seed_gates(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    fc_before = model.fc.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.fc.weight, fc_before)


@pytest.mark.parametrize("depth,arch", [(57, None), (51, None), (52, "cifar"), (20, "bottleneck")])
def test_bad_depth_raises_listing_valid_depths(depth: int, arch: str | None) -> None:
    with pytest.raises(SpecError, match="valid depths"):
        build_model(depth, arch)


@pytest.mark.parametrize("kwargs", [{"shortcut": "C"}, {"survival": "dropout"}, {"p_last": 0.0},
                                    {"num_classes": 0}])
def test_bad_settings_raise_spec_error(kwargs: dict) -> None:
    with pytest.raises(SpecError):
        build_model(20, **kwargs)


@pytest.mark.parametrize("train", [False, True])
def test_channels_last_matches_contiguous(train: bool) -> None:
    model = build_model(20, survival="linear", p_last=0.5).train(train)
    x = small_batch(4, 16)
    with torch.no_grad():
        model.seed_gates(2)
        dense = model(x)
        model.to(memory_format=torch.channels_last)
        model.seed_gates(2)
        last = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(last, dense, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_with_dropped_transitions() -> None:
    model = build_model(20, survival="uniform", p_last=0.5).train()
    model.seed_gates(3)
    x = small_batch(4, 16).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    assert out.shape == (4, 10) and torch.isfinite(out.float()).all()
