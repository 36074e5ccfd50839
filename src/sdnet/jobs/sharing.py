"""Several training runs per GPU (`train_resources.runs_per_gpu: k`): packs and shards (torch-free).

A CIFAR ResNet at batch 128 leaves a modern GPU mostly idle, so k trainers can share one. The
workflow (common.smk, train.smk) does it one of two ways, `train_resources.gpu_sharing`:

- `shard`: one job per run, as with k = 1. Locally the GPU lock hands out k slots per GPU
  (`sdnet.jobs.gpus`) and `--resources gpu=G` admits k x G training jobs; on Slurm each job asks for
  `shards_per_gpu // k` of a GPU's shards (`--gres=shard:S`, Slurm >= 22.05), so the cluster
  puts at most k on one GPU. Needs shards configured on the cluster (checked before any job).
- `pack`: one job per k runs (`packs`). The job holds one GPU (Slurm: `--gpus=1`, k times the
  CPUs and memory of one run) and `sdnet launch` starts its k trainers side by side in it. A
  pack is k seeds of one (data set, network, variant): alike in length, and adding a seed changes
  only the last pack of each group. When the allocation dies, Snakemake retries the pack and each
  trainer resumes from its own checkpoint. Works on any cluster. (Snakemake's own group jobs run
  their jobs one after another inside the allocation, snakemake #4223, hence a rule of our own.)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sdnet.errors import SdnetError

SHARING_MODES = ("shard", "pack")
_GRES_ITEM = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?::(?P<type>[^:()]+))?:(?P<count>\d+)")


@dataclass(frozen=True)
class Pack:
    """k runs trained side by side in one job."""

    runs: tuple  # grid.Run, in seed order
    name: str  # a rule name: train_pack_<dataset>_<network>_<variant>_seeds<a>_<b>

    @property
    def size(self) -> int:
        return len(self.runs)


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)


def packs(runs: Sequence[Any], k: int, network: Callable[[Any], str]) -> list[Pack]:
    """The grid's runs in packs of up to k: consecutive seeds of one (data set, network,
    variant), in the grid's order. `network(run)` names a run's network."""
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault((run.dataset, network(run), run.variant), []).append(run)
    out, names = [], set()
    for (dataset, net, variant), members in groups.items():
        for start in range(0, len(members), k):
            chunk = tuple(members[start:start + k])
            seeds = "_".join(str(run.seed) for run in chunk)
            name = _identifier(f"train_pack_{dataset}_{net}_{variant}_seeds{seeds}")
            while name in names:  # two variant names that differ only in - . _
                name += "_"
            names.add(name)
            out.append(Pack(chunk, name))
    return out


# ----------------------------------------------------------------------------- shards


def parse_gres(text: str) -> dict[str, int]:
    """'gpu:a100:4(S:0-1),shard:a100:32' -> {'gpu': 4, 'shard': 32} (counts summed by name)."""
    counts: dict[str, int] = {}
    for item in re.split(r",(?![^()]*\))", text.strip()):
        match = _GRES_ITEM.match(item.strip())
        if match:
            counts[match["name"]] = counts.get(match["name"], 0) + int(match["count"])
    return counts


def cluster_shards_per_gpu(sinfo: str) -> int | None:
    """Shards per GPU on the cluster (the fewest of any node that has both), from
    `sinfo -h -N -o '%N %G'`; None when no node has shards."""
    per_gpu = []
    for line in sinfo.splitlines():
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        counts = parse_gres(parts[1])
        if counts.get("shard") and counts.get("gpu"):
            per_gpu.append(counts["shard"] // counts["gpu"])
    return min(per_gpu) if per_gpu else None


def shards_per_job(k: int, per_gpu: int) -> int:
    """Shards one training job asks for so that exactly k fit on a GPU of `per_gpu` shards."""
    fitting = [n for n in range(1, per_gpu + 1) if per_gpu // (per_gpu // n) == n]
    if k > per_gpu:
        raise SdnetError(f"train_resources.runs_per_gpu: {k} runs per GPU need at least {k} "
                         f"shards per GPU; the cluster has {per_gpu}")
    if per_gpu // (per_gpu // k) != k:
        raise SdnetError(f"train_resources.runs_per_gpu: {k} does not fit the cluster's "
                         f"{per_gpu} shards per GPU (jobs of {per_gpu // k} shards would run "
                         f"{per_gpu // (per_gpu // k)} per GPU); choose one of "
                         f"{', '.join(map(str, fitting))}, or gpu_sharing: pack")
    return per_gpu // k


def query_shards_per_gpu(run: Callable[..., Any] = subprocess.run) -> int:
    """Ask the cluster (`sinfo`) how many shards a GPU has; SdnetError in one line if none."""
    try:
        done = run(["sinfo", "-h", "-N", "-o", "%N %G"], capture_output=True, text=True,
                   timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SdnetError(f"train_resources.gpu_sharing: shard needs `sinfo` to find the "
                         f"cluster's shards ({err}); set train_resources.shards_per_gpu, or use "
                         "gpu_sharing: pack") from None
    per_gpu = cluster_shards_per_gpu(done.stdout) if done.returncode == 0 else None
    if per_gpu is None:
        seen = done.stdout.strip().splitlines()[:1] if done.returncode == 0 else \
            [done.stderr.strip()]
        raise SdnetError("train_resources.gpu_sharing: shard, but this cluster has no GPU "
                         f"shards (gres/shard; sinfo: {'; '.join(seen) or 'no nodes'}): ask "
                         "the admins to configure them, or use gpu_sharing: pack")
    return per_gpu


def gres_request(shards: int, gpu_model: str | None) -> str:
    """The job's --gres: 'shard:4', or 'shard:a100:4' for a GPU model."""
    return f"shard:{gpu_model}:{shards}" if gpu_model else f"shard:{shards}"
