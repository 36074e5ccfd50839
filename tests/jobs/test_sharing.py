"""sdnet.jobs.sharing: packs of k seeds per (data set, network, variant), and the shards a job asks
for read from `sinfo` (none configured, or k that does not fit: one line)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from sdnet.errors import SdnetError
from sdnet.jobs import sharing


@dataclass(frozen=True)
class Run:
    dataset: str
    depth: int
    variant: str
    seed: int


def test_packs_are_k_seeds_of_one_variant_in_grid_order() -> None:
    runs = [Run("cifar10", 110, v, s) for v in ("baseline", "linear-p_last0.5")
            for s in range(5)]
    packs = sharing.packs(runs, 2, lambda run: f"resnet{run.depth}")
    assert [[r.seed for r in p.runs] for p in packs] == [[0, 1], [2, 3], [4]] * 2
    assert {r.variant for r in packs[3].runs} == {"linear-p_last0.5"}
    assert packs[0].name == "train_pack_cifar10_resnet110_baseline_seeds0_1"
    assert packs[5].name == "train_pack_cifar10_resnet110_linear_p_last0_5_seeds4"
    assert packs[2].size == 1
    # adding a seed changes only the last pack of each variant
    more = sharing.packs(runs + [Run("cifar10", 110, "baseline", 5)], 2,
                         lambda run: f"resnet{run.depth}")
    assert [p.name for p in more][:2] == [p.name for p in packs][:2]
    clash = sharing.packs([Run("c", 8, "a-b", 0), Run("c", 8, "a_b", 0)], 2, lambda r: "n")
    assert len({p.name for p in clash}) == 2


def test_gres_and_shards_per_gpu_from_sinfo() -> None:
    assert sharing.parse_gres("gpu:a100:4(S:0-1),shard:a100:32") == {"gpu": 4, "shard": 32}
    assert sharing.parse_gres("gpu:2,shard:8,gpu:v100:2") == {"gpu": 4, "shard": 8}
    assert sharing.parse_gres("(null)") == {}
    sinfo = "n1 gpu:testgpu:2,shard:testgpu:8\nn2 gpu:a100:4,shard:a100:8\nn3 (null)\n"
    assert sharing.cluster_shards_per_gpu(sinfo) == 2
    assert sharing.cluster_shards_per_gpu("n1 gpu:4\n") is None


@pytest.mark.parametrize(("k", "per_gpu", "shards"), [(1, 4, 4), (2, 4, 2), (4, 4, 1),
                                                      (2, 8, 4), (3, 9, 3), (8, 64, 8)])
def test_shards_per_job_fit_exactly_k(k: int, per_gpu: int, shards: int) -> None:
    assert sharing.shards_per_job(k, per_gpu) == shards
    assert per_gpu // shards == k


def test_k_that_the_shards_cannot_express_is_one_line() -> None:
    with pytest.raises(SdnetError, match=r"3 does not fit the cluster's 8 shards per GPU .*"
                       r"choose one of 1, 2, 4, 8, or gpu_sharing: pack"):
        sharing.shards_per_job(3, 8)
    with pytest.raises(SdnetError, match="need at least 4 shards per GPU; the cluster has 2"):
        sharing.shards_per_job(4, 2)
    assert sharing.gres_request(2, None) == "shard:2"
    assert sharing.gres_request(2, "a100") == "shard:a100:2"


def test_a_cluster_without_shards_is_one_line() -> None:
    def sinfo(out: str, rc: int = 0, err: str = ""):
        return lambda *a, **k: subprocess.CompletedProcess(a, rc, out, err)

    assert sharing.query_shards_per_gpu(sinfo("vm gpu:testgpu:2,shard:testgpu:8\n")) == 4
    with pytest.raises(SdnetError, match=r"this cluster has no GPU shards \(gres/shard; sinfo: "
                       r"vm gpu:a100:2\): ask the admins"):
        sharing.query_shards_per_gpu(sinfo("vm gpu:a100:2\n"))
    with pytest.raises(SdnetError, match="no GPU shards .*Unable to contact slurm controller"):
        sharing.query_shards_per_gpu(sinfo("", 1, "sinfo: error: Unable to contact slurm "
                                               "controller"))

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "sinfo")

    with pytest.raises(SdnetError, match="needs `sinfo`"):
        sharing.query_shards_per_gpu(missing)
