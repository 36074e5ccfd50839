"""One run on several processes (GPUs, or CPU ranks with gloo): issue 20, docs/DESIGN.md
"One run on several GPUs".

Submodules, from the bottom up:
- `world` (torch-free): who this process is (rank, world size) from torchrun's or a Slurm
  step's environment, the batch check, one-line errors of ranks.
- `launch` (torch-free): `sdnet train --nproc N [--nodes M]` starts the N ranks, as local
  processes or through `srun` inside a Slurm allocation, and takes them all down when one dies.
- `worker`: the entry point of a rank the launcher started.
- `replica` (torch): the process group, the data shards, the gradient all-reduce, the
  reductions of metrics and evaluation, buffers, RNG states and the start agreement.
- `syncbn` (torch): batch norm over the global batch (`sync_bn`), on CUDA and on CPU.

This package's `__init__` imports nothing heavy: `sdnet.cli` reads `world` at start-up.
"""

from sdnet.distributed.world import World, detect, error_line

__all__ = ["World", "detect", "error_line"]
