"""Gradient strength (the paper's Fig. 7): mean |gradient| of each residual block's first branch
convolution, accumulated on the device during an epoch and read once at its end.

Fig. 7 of Huang et al. plots, per epoch, the mean absolute gradient of the first convolution of
the first residual block (l = 1), with and without stochastic depth. `GradientMeter` records that
quantity for every block: after each `backward()` it adds, for each block that was active in the
step, the L1 norm of its `conv1.weight.grad` to a 0-d device tensor (`torch._foreach_norm` and
`torch._foreach_add_`: two fused kernels on CUDA, no host sync); which blocks were active is the
gate's host-side list of bools of the step (`model.gate.last_active`), and the step counts are
host-side too. `epoch_figures()` reads the sums with the epoch's one sync and returns, per
block, the mean over its active steps of the mean |gradient| over the weight's elements (`None`
for a block that never ran in the epoch: its gradient was not measured, and 0 would be a false
measurement).

A dropped block's gradient is zero (its branch never ran; the trainer zeroes gradients rather
than dropping them), so averaging over every step would mix the gradient's size with the
block's survival rate; averaging over active steps keeps them apart (gradients.csv has both:
`mean_abs_grad` and `active_steps`).

The meter's state is in checkpoint.pt (`state_dict`), so a resumed run writes the same figures;
the epoch's figures travel in the metrics rows (`grad_first_conv`, `block_gradients`), which
checkpoint.pt and final_state.pt hold. The files (metrics.csv's column, gradients.csv) are
`sdnet.train.runfolder`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sdnet.errors import SdnetError
from sdnet.train.runfolder import BLOCK_GRADIENTS

# The metrics.csv column (sdnet.spec.METRICS_COLUMNS): the paper's quantity, block 1.
FIRST_CONV = "grad_first_conv"


def first_convolution(block: nn.Module, index: int) -> nn.Conv2d:
    """The first convolution of a residual block's branch: `conv1` in every block family."""
    conv = getattr(block, "conv1", None)
    if not isinstance(conv, nn.Conv2d):
        raise SdnetError(f"residual block {index + 1} ({type(block).__name__}) has no conv1 "
                         "convolution to measure gradients on")
    return conv


@dataclass(frozen=True)
class EpochGradients:
    """One epoch's figures: per block (1-based order) the mean |grad| over its active steps
    (None when it never ran) and how many steps it ran."""

    means: tuple[float | None, ...]
    steps: tuple[int, ...]

    @property
    def first_conv(self) -> float | None:
        """The paper's Fig. 7 quantity: the first residual block's figure."""
        return self.means[0] if self.means else None

    def row(self) -> dict:
        """This epoch's entries of its metrics (history) row."""
        return {FIRST_CONV: self.first_conv, BLOCK_GRADIENTS: self.rows()}

    def rows(self) -> list[list]:
        """The history row's BLOCK_GRADIENTS value (plain types: checkpoint-safe)."""
        return [[mean, steps] for mean, steps in zip(self.means, self.steps)]


class GradientMeter:
    """Accumulates each block's first-convolution |gradient| over an epoch, on the device.

    `per_block=False` measures block 1 only (the paper's quantity): one norm per step instead
    of one per active block.
    """

    def __init__(self, blocks: Sequence[nn.Module], *, per_block: bool = True) -> None:
        blocks = list(blocks)
        if not blocks:
            raise SdnetError("a network without residual blocks has no gradients to measure")
        self.per_block = per_block
        measured = blocks if per_block else blocks[:1]
        self.weights = [first_convolution(b, i).weight for i, b in enumerate(measured)]
        self.numel = [w.numel() for w in self.weights]
        self.num_blocks = len(blocks)
        self._sums = [torch.zeros((), dtype=w.dtype, device=w.device) for w in self.weights]
        self._steps = [0] * len(self.weights)

    def after_backward(self, active: Sequence[bool]) -> None:
        """Add this step's gradients of the blocks that ran (call between backward and step)."""
        chosen = [i for i, on in enumerate(active[:len(self.weights)]) if on]
        if not chosen:
            return
        grads = [self.weights[i].grad for i in chosen]
        if any(g is None for g in grads):
            raise SdnetError("a measured convolution has no gradient after backward()")
        torch._foreach_add_([self._sums[i] for i in chosen], torch._foreach_norm(grads, 1))
        for i in chosen:
            self._steps[i] += 1

    def pending_sums(self) -> torch.Tensor:
        """The epoch's sums so far as one float64 device tensor (no sync), for a caller that
        reads them back together with its own figures (sdnet.train.run_epoch)."""
        return torch.stack(self._sums).double()

    def epoch_figures(self, sums: Sequence[float] | None = None) -> EpochGradients:
        """The epoch's figures, then start the next epoch from zero. `sums`: pending_sums()
        already read back by the caller; None reads them here (one host sync)."""
        if sums is None:
            sums = self.pending_sums().tolist()
        sums = list(sums)
        if len(sums) != len(self._sums):
            raise ValueError(f"{len(sums)} sums for {len(self._sums)} measured blocks")
        means = tuple(total / (numel * steps) if steps else None
                      for total, numel, steps in zip(sums, self.numel, self._steps))
        figures = EpochGradients(means=means, steps=tuple(self._steps))
        self.reset()
        return figures

    def reset(self) -> None:
        for total in self._sums:
            total.zero_()
        self._steps = [0] * len(self.weights)

    def state_dict(self) -> dict:
        """The partial epoch's sums and counts (zero at an epoch boundary), checkpoint-safe."""
        return {"per_block": self.per_block, "sums": torch.stack(self._sums).detach().cpu(),
                "steps": list(self._steps)}

    def load_state_dict(self, state: dict | None) -> None:
        """Put a checkpoint's sums back; None (a checkpoint from before the meter) = zero."""
        if state is None:
            self.reset()
            return
        if state["per_block"] != self.per_block or len(state["steps"]) != len(self.weights):
            raise SdnetError("checkpoint.pt holds gradient sums of another network; delete it "
                             "or pass --restart")
        for total, value in zip(self._sums, state["sums"]):
            total.copy_(value)
        self._steps = [int(s) for s in state["steps"]]

