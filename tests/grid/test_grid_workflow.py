"""What the workflow asks of sdnet.grid (workflow/rules/common.smk only wires it into rules):
`targets`, the figures and tables of a grid (one decision, shared with sdnet.report), and
`commands`, the flags of every rule's `sdnet` command line and the training jobs' sizes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest

from sdnet import grid, report, settings
from sdnet.grid import commands, targets
from sdnet.grid.targets import Point
from sdnet.jobs import packs, sharing

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "config.yaml"
ALWAYS = [*targets.FIGURES, *targets.GRADIENT_FIGURES]


def load(*overlays: str) -> dict:
    """config.yaml with shipped overlays, validated."""
    return grid.load_config([BASE, *(ROOT / o for o in overlays)], warn=lambda message: None)


def point(depth: int = 110, survival: str = "linear", p_last: float = 0.5, *,
          dataset: str = "cifar10", augment: bool = True) -> Point:
    return Point(dataset, f"resnet{depth}", depth, augment, survival, p_last)


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize(("overlay", "extra"), [
    (None, []),  # the paper's grid: two depths, one p_L each
    ("config/demo.yaml", []),
    ("config/paper/table1.yaml", []),
    ("config/paper/fig8.yaml", [targets.SWEEP_FIGURE]),  # one depth, ten p_L
    ("config/paper/fig8-heatmap.yaml", [targets.SWEEP_FIGURE, targets.HEATMAP_FIGURE]),
])
def test_the_shipped_grids_figures(overlay: str | None, extra: list[str]) -> None:
    cfg = load(*([overlay] if overlay else []))
    assert targets.figure_names(targets.points(grid.runs(cfg))) == [*ALWAYS, *extra]


def test_a_sweep_needs_two_p_last_of_one_rule_in_one_row() -> None:
    assert not targets.p_last_sweeps([point(p_last=0.5), point(survival="uniform", p_last=0.8)])
    assert not targets.p_last_sweeps([point(survival="none", p_last=p) for p in (0.5, 1.0)])
    assert not targets.p_last_sweeps([point(p_last=0.5), point(p_last=0.8, augment=False)])
    assert targets.p_last_sweeps([point(p_last=0.5), point(p_last=0.8), point(56)]) == {
        ("cifar10", "resnet110", True)}


def test_a_heatmap_needs_two_depths_and_two_p_last_of_one_rule() -> None:
    diagonal = [point(20, p_last=0.8), point(110, p_last=0.5)]
    assert targets.heatmap_panels(diagonal) == {("cifar10", True, "linear")}
    assert not targets.heatmap_panels([point(20, p_last=0.8), point(110, p_last=0.8)])
    assert not targets.heatmap_panels([point(20, p_last=0.8), point(20, p_last=0.5)])
    assert not targets.heatmap_panels([point(20, p_last=0.8),
                                       point(110, "uniform", p_last=0.5)])
    assert targets.figure_names(diagonal) == [*ALWAYS, targets.HEATMAP_FIGURE]


def test_the_report_draws_exactly_the_panels_the_grid_asked_for() -> None:
    """runs.csv of a grid -> sdnet.report's rows and panels agree with the grid's decision (the
    Snakefile asks for a figure exactly when the report can draw it)."""
    for overlay in (None, "config/paper/fig8.yaml", "config/paper/fig8-heatmap.yaml"):
        runs = grid.runs(load(*([overlay] if overlay else [])))
        frame = pd.DataFrame([{"dataset": r.dataset, "network": r.network, "depth": r.depth,
                               "augment": r.settings["augment"], "survival":
                               r.settings["survival"], "p_last": r.settings["p_last"]}
                              for r in runs])
        points = targets.points(runs)
        assert {tuple(row) for row in report.sweep_rows(frame)} == targets.p_last_sweeps(points)
        assert {tuple(p) for p in report.heatmap_panels(frame)} == targets.heatmap_panels(points)


def test_table_files_are_what_the_report_writes() -> None:
    assert tuple(targets.table_files()) == report.TABLES
    assert [p.name for p in report.figure_paths("f")] == targets.figure_files(targets.FIGURES)


# ----------------------------------------------------------------------------- commands


def test_train_flags_are_the_settings_and_the_ranks() -> None:
    cfg = load()
    run = grid.runs(cfg)[0]
    flags = commands.train_flags(run.settings)
    assert flags == shlex.join(settings.to_flags(run.settings))
    assert commands.ranks(run.settings) == commands.nodes(run.settings) == 1
    wide = {**run.settings, "gpus": 4, "nodes": 2}
    assert commands.train_flags(wide) == flags + " --nproc 4 --nodes 2"
    assert commands.train_flags({**run.settings, "gpus": 2}) == flags + " --nproc 2"
    assert (commands.ranks(wide), commands.nodes(wide)) == (4, 2)


def test_runtime_grows_with_each_attempt() -> None:
    res = {"runtime": 100, "runtime_growth": 1.5}
    assert [commands.runtime(res, a) for a in (1, 2, 3)] == [100, 150, 225]


def test_data_flags() -> None:
    cfg = load()
    assert commands.download_flags(cfg, "cifar10", "cifar-10-python.tar.gz", "unused") == (
        "--url 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz' "  # quoted: the ~
        f"--md5 {cfg['datasets']['cifar10']['md5']}")
    svhn = commands.download_flags(cfg, "svhn", "test_32x32.mat", "unused")
    assert svhn.startswith("--file test_32x32.mat --url http") and "eb5a983be6a" in svhn
    assert commands.dataset_files(cfg, "svhn") == ["train_32x32.mat", "test_32x32.mat",
                                                    "extra_32x32.mat"]
    assert commands.prepare_flags(cfg, "svhn") == (
        "--split-seed 0 --use-extra --val-per-class-extra 200 --val-per-class-train 400")
    assert "--max-side 512" in commands.prepare_flags(cfg, "imagenet")
    demo = load("config/demo.yaml")
    assert commands.is_fake(demo, "cifar10") and not commands.is_fake(cfg, "cifar10")
    fake = "resources/demo/mirror/cifar10/cifar-10-python.tar.gz"
    assert commands.download_flags(demo, "cifar10", "cifar-10-python.tar.gz", fake) == (
        f"--url {fake} --md5 none")
    assert commands.fake_flags(demo, "cifar10") == "--seed 0 --per-class 100"
    assert commands.prepare_flags(demo, "cifar10") == "--split-seed 0 --val-size 100"
    assert "svhn" in commands.folder_datasets() and "cifar10" not in commands.folder_datasets()


def test_a_packs_command_parses_back_into_its_runs() -> None:
    cfg = load("config/demo.yaml")
    pack = sharing.packs(grid.runs(cfg), 2, lambda run: run.network)[0]
    words = commands.pack_members(pack.runs, "data/{dataset}", "out/{dataset}/{seed}",
                                  "logs/{variant}/{seed}.log")
    members = packs.parse_members(shlex.split(words))
    assert [str(m.log) for m in members] == [f"logs/{r.variant}/{r.seed}.log" for r in pack.runs]
    first = members[0].args
    assert first[:4] == ("--data", f"data/{pack.runs[0].dataset}", "--out",
                         f"out/{pack.runs[0].dataset}/{pack.runs[0].seed}")
    assert " ".join(first[4:]) == (commands.train_flags(pack.runs[0].settings)
                                   + " --on-mismatch restart")
    assert commands.pack_inputs(pack.runs, "data/{dataset}") == [
        f"data/{pack.runs[0].dataset}/{n}" for n in ("train.npz", "test.npz", "meta.json")]
    assert len(commands.pack_outputs(pack.runs, "out/{dataset}/{seed}")) == 3 * pack.size


def test_sdnet_on_path(tmp_path: Path) -> None:
    (tmp_path / "sdnet").touch()
    env = {"PATH": "/usr/bin"}
    commands.sdnet_on_path(env, str(tmp_path / "python"))
    assert env["PATH"] == f"{tmp_path}:/usr/bin"
    commands.sdnet_on_path(env, str(tmp_path / "python"))  # once
    assert env["PATH"] == f"{tmp_path}:/usr/bin"
    other = {"PATH": "/usr/bin"}
    commands.sdnet_on_path(other, "/nowhere/python")  # no sdnet there: unchanged
    assert other == {"PATH": "/usr/bin"}
