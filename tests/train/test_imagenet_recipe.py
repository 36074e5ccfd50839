"""ImageNet's paper numbers and preset: the four top-1 errors, config/paper/imagenet.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from sdnet import report
from sdnet.report import paper

ROOT = Path(__file__).resolve().parents[2]


def test_the_four_imagenet_numbers() -> None:
    imagenet = [r for r in paper.PAPER_RESULTS if r.dataset == "imagenet"]
    assert {(r.survival, r.epochs): r.test_error for r in imagenet} == {
        ("none", 90): 23.06, ("linear", 90): 23.38, ("none", 120): 21.78, ("linear", 120): 21.98}
    assert all(r.arch == "imagenet" and r.depth == 152 and r.source for r in imagenet)
    err = report.paper_test_error
    assert err("imagenet", 152, "none", 1.0, True, arch="imagenet") == 21.78  # the run's end
    assert err("imagenet", 152, "linear", 0.5, True, arch="imagenet") == 21.98
    assert paper.paper_result("imagenet", 152, "linear", 0.5, True, "imagenet",
                              epochs=90).test_error == 23.38
    assert err("imagenet", 152, "none", 1.0, True) is None  # the CIFAR-style ResNet-152
    assert err("imagenet", 50, "none", 1.0, True, arch="imagenet") is None


def test_preset_is_the_papers_recipe() -> None:
    preset = yaml.safe_load((ROOT / "config/paper/imagenet.yaml").read_text())
    exp = preset["experiment"]
    assert exp["datasets"] == ["imagenet"] and exp["variants"] == ["baseline", "stochastic"]
    assert exp["depths"] == [152] and exp["archs"] == ["imagenet"]
    train = preset["datasets"]["imagenet"]["train"]
    assert train["epochs"] == 120 and train["milestones"] == [30, 60, 90]
    assert train["lr"] == 0.1 and train["weight_decay"] == 1e-4 and train["nesterov"] is True
    assert train["batch_size"] == 128 and train["gpus"] == 4


def test_per_seed_table_shows_top5_where_runs_have_it(tmp_path: Path) -> None:
    from sdnet.report import tables
    from sdnet.report.aggregate import read_runs
    from tests.report_runs import markdown_table, runs_row, write_runs_csv

    rows = [runs_row("imagenet", 152, "baseline", 0, 21.9, arch="imagenet",
                     final_test_error_top5=6.1),
            runs_row("imagenet", 152, "stochastic", 0, 22.0, "linear", 0.5, arch="imagenet",
                     final_test_error_top5=6.3)]
    runs = read_runs(write_runs_csv(tmp_path / "runs.csv", rows))
    table = markdown_table(tables.per_seed_markdown(runs))
    assert table[0][-1] == "Top-5 error" and [r[-1] for r in table[1:]] == ["6.10", "6.30"]
    assert "top-5" in tables.per_seed_markdown(runs).lower()
    summary = tables.summary_markdown(runs)
    assert "21.78" in summary and "23.06" in summary  # the paper: 120 epochs, 90 in the note
    old = read_runs(write_runs_csv(tmp_path / "old.csv", [runs_row()]))
    assert "Top-5" not in tables.per_seed_markdown(old)  # runs without it: no column
