"""One rank started by `sdnet train --nproc N` (locally or through srun): `python -m
sdnet.train.worker`. The settings come as JSON in SDNET_TRAIN_CONFIG, the rank and world
from torchrun's or Slurm's variables; errors are one line, as from `sdnet train`, and a settings
error (the same on every rank) is printed by rank 0 alone."""

from __future__ import annotations

from sdnet.distributed.world import EveryRankError, guarded
from sdnet.errors import SdnetError
from sdnet.jobs import ranks
from sdnet.settings import check_config


def main() -> int:
    ranks.die_with_parent()
    return guarded(_train)


def _train() -> int:
    try:
        config = check_config(ranks.config_from_env())
    except SdnetError as err:  # every rank reads the same settings: one line, from rank 0
        raise EveryRankError(str(err)) from None
    from sdnet.train import loop

    loop.train(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
