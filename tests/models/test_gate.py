"""sdnet.models.gate: survival rules (Eq. 4), the per-batch draw, Eq. 5 scaling, counts, RNG."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from sdnet.models import Gate, GatedNetwork, build_model, survival_probabilities
from sdnet.networks import SpecError

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
    gate = Gate(54, "linear", 0.5)
    assert sum(gate.probabilities) == pytest.approx(40.25)
    assert gate.expected_fraction() == pytest.approx(40.25 / 54)


def test_none_and_uniform_rules() -> None:
    assert survival_probabilities(5, "none", 0.5) == [1.0] * 5
    assert survival_probabilities(5, "uniform", 0.3) == [0.3] * 5
    assert Gate(9).expected_fraction() == 1.0


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


def test_gate_of_no_blocks_is_refused() -> None:
    with pytest.raises(SpecError, match="at least one residual block"):
        Gate(0, "linear", 0.5)


# --- the gate on its own (fake blocks: no network needed) ---------------------------------------


class Recorder(nn.Module):
    """A fake gated block: adds 1 to x when active (times scale), records each call."""

    def __init__(self, calls: list) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, x: torch.Tensor, active: bool = True, scale: float = 1.0) -> torch.Tensor:
        self.calls.append((self, active, scale))
        return x + scale if active else x


def test_draw_is_the_documented_sequence_and_last_active_keeps_it() -> None:
    gate = Gate(6, "uniform", 0.5, seed=4)
    reference = torch.Generator().manual_seed(4)
    for _ in range(5):
        expected = [u < 0.5 for u in torch.rand(6, generator=reference).tolist()]
        assert gate.draw() == expected
        assert gate.last_active == expected
    assert gate.stats()[1] == 30


def test_run_in_training_passes_each_draw_to_its_block() -> None:
    calls: list = []
    blocks = nn.ModuleList(Recorder(calls) for _ in range(8))
    gate = Gate(8, "uniform", 0.5).train()
    gate.manual_seed(2)
    out = gate.run(blocks, torch.zeros(1))
    active = gate.last_active
    assert any(active) and not all(active)
    assert [(b, a) for b, a, _ in calls] == list(zip(blocks, active))
    assert all(scale == 1.0 for *_, scale in calls)  # no rescaling at train time
    assert out.item() == sum(active)
    assert gate.stats() == (sum(active), 8)


@pytest.mark.parametrize("rule,scaled", [("linear", True), ("uniform", True), ("none", False),
                                         ("epoch-linear", False)])
def test_run_in_eval_runs_every_block_scaled_by_p_l_eq5(rule: str, scaled: bool) -> None:
    calls: list = []
    blocks = nn.ModuleList(Recorder(calls) for _ in range(4))
    gate = Gate(4, rule, 0.5).eval()
    gate.set_epoch(3, 4)  # epoch-linear at p_L now: still never scaled
    gate.run(blocks, torch.zeros(1))
    assert all(active for _, active, _ in calls)
    expected = gate.probabilities if scaled else [1.0] * 4
    assert [scale for *_, scale in calls] == pytest.approx(expected)
    if rule != "none":
        assert min(gate.probabilities) < 1
    assert gate.stats() == (0, 0)  # eval counts nothing
    assert gate.last_active == [True] * 4


def test_epoch_linear_gate_shares_one_p_that_decays_and_other_rules_ignore_epochs() -> None:
    gate = Gate(9, "epoch-linear", 0.5)
    assert gate.probabilities == [1.0] * 9
    gate.set_epoch(2, 5)
    assert gate.probabilities == pytest.approx([0.75] * 9)
    gate.set_epoch(4, 5)
    assert gate.probabilities == pytest.approx([0.5] * 9)
    linear = Gate(9, "linear", 0.5)
    before = linear.probabilities
    linear.set_epoch(4, 5)
    assert linear.probabilities == before
    with pytest.raises(SpecError):
        linear.set_epoch(5, 5)


def test_stats_reset_and_probabilities_are_a_copy() -> None:
    gate = Gate(3, "linear", 0.5)
    gate.draw()
    assert gate.stats()[1] == 3
    gate.reset_stats()
    assert gate.stats() == (0, 0)
    gate.probabilities.append(0.0)
    assert len(gate.probabilities) == 3


def test_rng_state_round_trip_replays_the_gates() -> None:
    gate = Gate(9, "linear", 0.5, seed=5)
    state = gate.get_rng_state()
    first = [gate.draw() for _ in range(3)]
    gate.set_rng_state(state)
    assert [gate.draw() for _ in range(3)] == first
    gate.manual_seed(5)
    assert gate.draw() == first[0]
    gate.manual_seed(6)
    assert [gate.draw() for _ in range(3)] != first


def test_gate_draws_ignore_the_global_rng() -> None:
    gate = Gate(9, "uniform", 0.5, seed=1)
    torch.manual_seed(0)
    a = gate.draw()
    gate.manual_seed(1)
    torch.manual_seed(123)
    torch.rand(7)
    assert gate.draw() == a


# --- the gate inside a network --------------------------------------------------------------------


@pytest.mark.parametrize("arch,depth", [("cifar", 20), ("bottleneck", 50), ("preact", 20),
                                        ("preact-bottleneck", 11)])
def test_every_family_is_a_gated_network_whose_gate_follows_train_and_eval(arch, depth) -> None:
    model = build_model(depth, arch, survival="linear", p_last=0.5)
    assert isinstance(model, GatedNetwork)
    assert model.gate.num_blocks == len(model.blocks)
    assert model.gate in list(model.modules())
    model.eval()
    assert model.gate.training is False
    model.train()
    assert model.gate.training is True


def test_gate_adds_nothing_to_the_state_dict() -> None:
    """model.pt and checkpoints hold weights only; the gate's RNG travels in the checkpoint's
    "rng" entry (same keys as before the gate had a module of its own)."""
    model = build_model(8, survival="linear", p_last=0.5)
    assert not any(key.startswith("gate") for key in model.state_dict())
    assert list(model.gate.state_dict()) == []

