"""A calibration: the measured speeds of one run's settings on one device (torch-free).

`sdnet.ops.calibrate` measures it (with torch), `sdnet.ops.estimate` caches it and turns it into
epoch seconds; this record is what both share, so neither imports the other's half.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """Measured speeds of one run's settings on one device."""

    step_seconds: float  # one training step at the run's batch
    eval_image_seconds: float  # one image of the evaluation pass
    checkpoint_seconds: float  # the checkpoint written after every epoch
    warmup_seconds: float  # the first steps' extra time, once per attempt
    steps_timed: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> Calibration:
        return cls(**{f.name: value[f.name] for f in dataclasses.fields(cls)})

    def epoch_seconds(self, train_images: int, eval_images: int, batch_size: int,
                      device_kind: str) -> float:
        """One epoch: the steps (a partial last batch costs a whole step on a GPU, its part on
        a CPU), the evaluation of `eval_images`, the checkpoint."""
        steps = train_images / batch_size
        if device_kind == "cuda":
            steps = math.ceil(steps)
        return (steps * self.step_seconds + eval_images * self.eval_image_seconds
                + self.checkpoint_seconds)
