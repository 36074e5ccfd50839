"""One rank started by `sdnet train --nproc N` (locally or through srun): `python -m
sdnet.distributed.worker`. The settings come as JSON in SDNET_TRAIN_CONFIG, the rank and world
from torchrun's or Slurm's variables; errors are one line, as from `sdnet train`."""

from __future__ import annotations

from sdnet.distributed import launch


def main() -> int:
    launch.die_with_parent()
    from sdnet import cli

    return cli.guarded(lambda: _train())


def _train() -> int:
    from sdnet import train

    train.train(launch.config_from_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
