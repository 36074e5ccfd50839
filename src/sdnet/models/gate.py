"""Stochastic depth as one gate any residual network composes (Huang et al. 2016).

In training mode each residual block l survives a mini-batch with probability p_l: one draw per
block per batch, all L at once from the gate's own CPU `torch.Generator` (so gating never waits on
an accelerator, and the draws do not depend on the device or on the global RNG). A dropped block
is its shortcut alone: its residual branch is not computed at all (no forward, no backward, BN
running statistics untouched), which is where the training-time saving comes from. At test time
every block runs with its branch scaled by p_l (Eq. 5), except under `epoch-linear`, which never
scales.

A network that uses the gate (`GatedNetwork`) holds `gate` and `blocks`; its forward pass calls
`gate.run(blocks, x)`, and each block takes `(x, active, scale)` (see `sdnet.models.resnet` and
`sdnet.models.preact`). The trainer and the checkpoint talk to the gate only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from sdnet import spec
from sdnet.networks import SpecError

__all__ = ["Gate", "GatedBlock", "GatedNetwork", "survival_probabilities"]


def survival_probabilities(
    num_blocks: int, rule: str, p_last: float, epoch: int = 0, epochs: int = 1
) -> list[float]:
    """Survival probability p_l of each block l = 1..L under `rule` (see docs/DESIGN.md).

    `epoch` is 0-based and only matters for `epoch-linear`, the seed tutorial's reading: one p for
    every block, 1 at the first epoch down to p_L at the last (a 1-epoch run stays at 1).
    """
    spec.check_survival(rule, p_last)
    if num_blocks < 1:
        raise SpecError(f"a gated network needs at least one residual block, got {num_blocks}")
    if epochs < 1 or not 0 <= epoch < epochs:
        raise SpecError(f"epoch must be in 0..{epochs - 1} (0-based), got {epoch}")
    p_last = float(p_last)
    if rule == "linear":  # Eq. 4 of the paper: decays over depth, fixed over training
        return [1.0 - (l / num_blocks) * (1.0 - p_last) for l in range(1, num_blocks + 1)]
    if rule == "uniform":
        return [p_last] * num_blocks
    if rule == "epoch-linear":
        progress = epoch / (epochs - 1) if epochs > 1 else 0.0
        return [1.0 - progress * (1.0 - p_last)] * num_blocks
    return [1.0] * num_blocks


class GatedBlock(Protocol):
    """A residual block the gate can drop: `block(x, active, scale)`.

    `active=False`: return the shortcut alone without calling the branch; `scale`: the factor of
    the branch (p_l at test time, 1.0 in training)."""

    def __call__(self, x: torch.Tensor, active: bool = True, scale: float = 1.0) -> torch.Tensor:
        ...


class Gate(nn.Module):
    """Per-batch Bernoulli(p_l) gates for `num_blocks` blocks, the rule's p_l and their counts.

    An `nn.Module` without parameters or buffers, so that `model.train()`/`eval()` reach it while
    the network's state dict (model.pt) keeps only its weights; the checkpoint saves the RNG state
    on its own (`get_rng_state`/`set_rng_state`).
    """

    def __init__(self, num_blocks: int, rule: str = "none", p_last: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.rule = rule
        self.p_last = float(p_last)
        self._probs = survival_probabilities(num_blocks, rule, p_last)
        self._scales = self._eval_scales()
        self.generator = torch.Generator().manual_seed(seed)  # CPU: gates never sync a device
        self.last_active: list[bool] = [True] * num_blocks
        self.reset_stats()

    def extra_repr(self) -> str:
        return f"{self.num_blocks} blocks, rule={self.rule}, p_last={self.p_last}"

    # --- the draw ---------------------------------------------------------------------------

    def draw(self) -> list[bool]:
        """One Bernoulli(p_l) draw per block for this mini-batch (training mode); counted.

        L uniforms at once from the CPU generator, block l active if u_l < p_l: one small CPU op
        per batch, the same sequence on every device."""
        draws = torch.rand(self.num_blocks, generator=self.generator).tolist()
        active = [u < p for u, p in zip(draws, self._probs)]
        self._computed += sum(active)
        self._total += self.num_blocks
        self.last_active = active
        return active

    def run(self, blocks: Iterable[GatedBlock], x: torch.Tensor) -> torch.Tensor:
        """x through every block: in training mode each block as drawn, scale 1; in eval mode
        every block, its branch scaled by p_l (Eq. 5; 1 under `none` and `epoch-linear`)."""
        if self.training:
            for block, active in zip(blocks, self.draw()):
                x = block(x, active)
        else:
            for block, scale in zip(blocks, self._scales):
                x = block(x, True, scale)
        return x

    # --- the rule ---------------------------------------------------------------------------

    @property
    def probabilities(self) -> list[float]:
        """p_l of every block, l = 1..L (a copy)."""
        return list(self._probs)

    def expected_fraction(self) -> float:
        """Expected fraction of residual branches computed per training step: mean of p_l."""
        return sum(self._probs) / self.num_blocks

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Move `epoch-linear` to 0-based `epoch` of `epochs`; other rules do not depend on it
        (the arguments are checked either way)."""
        probs = survival_probabilities(self.num_blocks, self.rule, self.p_last, epoch, epochs)
        if self.rule == "epoch-linear":
            self._probs = probs

    def _eval_scales(self) -> list[float]:
        if self.rule == "epoch-linear":
            return [1.0] * self.num_blocks  # the seed tutorial's variant never scales
        return list(self._probs)

    # --- statistics -------------------------------------------------------------------------

    def stats(self) -> tuple[int, int]:
        """(branches computed, blocks seen) in training mode since reset_stats()."""
        return self._computed, self._total

    def reset_stats(self) -> None:
        self._computed = 0
        self._total = 0

    # --- RNG state --------------------------------------------------------------------------

    def manual_seed(self, seed: int) -> None:
        """Make the gate sequence reproducible."""
        self.generator.manual_seed(seed)

    def get_rng_state(self) -> torch.Tensor:
        """The generator's state (a CPU uint8 tensor: loadable with weights_only=True)."""
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


@runtime_checkable
class GatedNetwork(Protocol):
    """What `sdnet.train.loop` and `sdnet.train.checkpoint` need from a network: an `nn.Module` whose
    residual blocks (`blocks`, in gate order, one per p_l) are driven by `gate`.

    Every builder in the `sdnet.networks` registry returns one (`sdnet.models.build_model`
    checks). Per-step analyses read `gate.last_active` to know which blocks ran.
    """

    gate: Gate
    blocks: nn.ModuleList
    training: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self, *args, **kwargs) -> dict: ...

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False
                        ) -> object: ...
