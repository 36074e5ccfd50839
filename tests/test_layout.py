"""sdnet.layout: where a run lives, and that it is the one place that says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdnet import grid, layout, networks

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = [("cifar", 110, "resnet110"), ("bottleneck", 50, "resnet50"),
            ("cifar", 50, "cifar-resnet50"), ("bottleneck", 152, "bottleneck-resnet152"),
            ("preact", 110, "preact-resnet110"),
            ("preact-bottleneck", 164, "preact-bottleneck-resnet164")]


@pytest.mark.parametrize(("arch", "depth", "name"), NETWORKS)
def test_a_run_folder_names_its_network_and_reads_back(arch: str, depth: int, name: str) -> None:
    network = networks.network_name(depth, arch)
    assert network == name
    folder = layout.run_folder("cifar10", network, "linear-p_last0.1", 3)
    assert folder == f"runs/cifar10/{name}/linear-p_last0.1/seed3"
    assert folder == layout.RUN_FOLDER.format(dataset="cifar10", network=network,
                                              variant="linear-p_last0.1", seed=3)
    key = layout.parse_run_folder(f"/results/paper/table1/{folder}")
    assert key == layout.RunKey("cifar10", name, "linear-p_last0.1", 3, arch, depth)
    assert re.fullmatch(layout.NETWORK_PATTERN, network)  # the Snakemake wildcard takes it


def test_todays_folder_names_are_kept() -> None:
    """Runs trained before families existed: resnet<depth> is the depth's own family."""
    assert layout.run_folder("svhn", networks.network_name(152), "baseline", 0) == \
        "runs/svhn/resnet152/baseline/seed0"
    assert layout.parse_run_folder("runs/cifar10/resnet50/stochastic/seed1").arch == "bottleneck"
    assert layout.TRAIN_LOG.format(dataset="cifar10", network="resnet110", variant="baseline",
                                   seed=0) == "logs/train_run/cifar10/resnet110/baseline/seed0.log"


@pytest.mark.parametrize("path", [
    "runs/cifar10/resnet57/baseline/seed0",          # no network of depth 57
    "runs/cifar10/cifar-resnet110/baseline/seed0",   # resnet110 is its name
    "runs/cifar10/resnext-resnet50/baseline/seed0",  # no such family
    "runs/cifar10/resnet110/baseline/seedx",
    "runs/cifar10/resnet110/baseline",
    "cifar10/resnet110/-bad/seed0",                  # not a variant name
])
def test_other_paths_are_not_run_folders(path: str) -> None:
    assert layout.parse_run_folder(path) is None


def test_the_grid_uses_the_layout() -> None:
    cfg = grid.load_config([ROOT / "config.yaml"], warn=lambda message: None)
    for run in grid.runs(cfg):
        assert run.folder == layout.run_folder(**run.wildcards)
        assert layout.parse_run_folder(run.folder) == layout.RunKey(
            run.dataset, run.network, run.variant, run.seed, run.arch, run.depth)


def test_the_layout_is_spelled_out_only_in_sdnet_layout() -> None:
    """The run folder path was once written in four places (grid, common.smk, train.smk,
    status's regex); now only layout.py writes a `/seed{...}` or `/resnet{...}` path part,
    as a format field or a regex group (the workflow reads RUN_FOLDER and TRAIN_LOG)."""
    files = [*sorted((ROOT / "src/sdnet").rglob("*.py")), ROOT / "Snakefile",
             *sorted((ROOT / "workflow").rglob("*.smk"))]
    spelled = [str(p.relative_to(ROOT)) for p in files
               if re.search(r"/(seed|resnet)(\{|\(\?P<)", p.read_text())]
    assert spelled == ["src/sdnet/layout.py"]
