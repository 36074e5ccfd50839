"""sdnet.report.figures: the figures from hand-made runs; error against p_L from a small sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from report_runs import aggregated_study, runs_row, sweep_rows, write_runs_csv

from sdnet import report
from sdnet.errors import SdnetError


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    study = aggregated_study(tmp_path_factory.mktemp("study"))
    study.figures = report.plot_figures(study.runs_csv, study.epochs_csv, study.root / "figures")
    report.render_tables(study.runs_csv, study.root / "tables")
    return study


def test_figures_written_as_pdf_and_png(study: SimpleNamespace) -> None:
    for path in report.figure_paths(study.root / "figures"):
        data = path.read_bytes()
        assert len(data) > 5000, path
        assert data.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG"), path
        assert b"CreationDate" not in data and b"Matplotlib" not in data
        assert path.stat().st_mode & 0o444 == 0o444, path  # readable by all, like any output


def test_figures_have_labelled_axes_and_legends_off_the_data(study: SimpleNamespace) -> None:
    figs = study.figures
    assert set(figs) == set(report.FIGURES)
    curves = figs["test_error_curves"].axes
    assert [ax.get_title() for ax in curves] == ["CIFAR-10, ResNet-110", "CINIC-10, ResNet-20"]
    for ax in curves:
        assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Test error (%)"
        assert ax.get_yscale() == "log"
        assert len(ax.get_lines()) == (3 if "110" in ax.get_title() else 2)
    for ax in figs["final_error"].axes:
        assert ax.get_ylabel() == "Test error at best val. epoch (%)"
        assert ax.get_xlabel() == "Variant"
    cifar_time = figs["epoch_time"].axes[0]
    assert cifar_time.get_ylabel() == "Training time per epoch (s)"
    assert [t.get_text() for t in cifar_time.texts] == ["1.00×", "0.80×", "0.67×"]
    for fig in figs.values():
        assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)


def test_linear_error_axis_on_request(study: SimpleNamespace) -> None:
    runs, epochs = report.read_runs(study.runs_csv), report.read_epochs(study.epochs_csv)
    fig = report.plot_test_error_curves(runs, epochs, log_scale=False)
    assert {ax.get_yscale() for ax in fig.axes} == {"linear"}


def test_same_inputs_give_the_same_bytes(study: SimpleNamespace, tmp_path: Path) -> None:
    """Re-render in a fresh process with another hash seed: every output byte-identical."""
    code = ("import sys; from sdnet import report; "
            "report.render_tables(sys.argv[1], sys.argv[3]); "
            "report.plot_figures(sys.argv[1], sys.argv[2], sys.argv[4])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    args = [str(study.runs_csv), str(study.epochs_csv), str(tmp_path / "tables"),
            str(tmp_path / "figures")]
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, timeout=120)
    for name in report.TABLES:
        assert (tmp_path / "tables" / name).read_bytes() == \
            (study.root / "tables" / name).read_bytes(), name
    for path in report.figure_paths(tmp_path / "figures"):
        assert path.read_bytes() == (study.root / "figures" / path.name).read_bytes(), path.name
    assert not [p for p in tmp_path.rglob("*.tmp")]  # atomic writes leave no temp files


def _sweep(tmp_path: Path) -> Path:
    """CIFAR-10 ResNet-110: constant depth, linear decay at five p_L, uniform at three (3 seeds);
    CINIC-10 ResNet-20: constant depth and one stochastic variant only (no sweep)."""
    rows = sweep_rows(6)
    rows += [runs_row(variant=f"uniform-p_last{p:g}", seed=s, error=5.5 + 2 * (1 - p) + 0.2 * s,
                      survival="uniform", p_last=p) for p in (0.9, 0.7, 0.5) for s in range(3)]
    rows += [runs_row("cinic10", 20, v, s, 12.0 + s, r, p) for v, r, p in
             (("baseline", "none", 1.0), ("stochastic", "linear", 0.5)) for s in range(2)]
    return write_runs_csv(tmp_path / "runs.csv", rows)


def test_error_vs_p_last_from_a_small_sweep(tmp_path: Path) -> None:
    runs_csv = _sweep(tmp_path)
    fig = report.plot_p_last_figure(runs_csv, tmp_path / "figures")
    for path in report.p_last_figure_paths(tmp_path / "figures"):
        assert path.stat().st_size > 5000, path
    (ax,) = fig.axes  # only the swept row gets a panel
    assert ax.get_title() == "CIFAR-10, ResNet-110"
    assert ax.get_xlabel().startswith("Survival probability of the last block")
    lines = ax.get_lines()
    linear, uniform, constant = lines[0], lines[1], lines[2]
    assert list(linear.get_xdata()) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    # sweep_rows: p_L = 0.9 is variant i = 0, errors 5.00, 5.15, 5.30 -> mean 5.15
    assert linear.get_ydata()[-1] == pytest.approx(5.15)
    assert list(uniform.get_xdata()) == pytest.approx([0.5, 0.7, 0.9])
    assert list(constant.get_ydata()) == pytest.approx([6.5, 6.5])  # 6.4, 6.5, 6.6
    assert len(ax.collections) >= 3  # two bands (3 seeds each) and the paper's star
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["linear decay", "uniform", "constant depth", "Huang et al. 2016"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.6", "0.7", "0.8", "0.9"]


def test_sweep_rows_need_two_p_last_values_of_one_rule(tmp_path: Path) -> None:
    runs = report.read_runs(_sweep(tmp_path))
    assert [(r.dataset, r.depth) for r in report.sweep_rows(runs)] == [("cifar10", 110)]
    two_rules = [runs_row(variant=v, seed=0, survival=r, p_last=0.5)
                 for v, r in (("stochastic", "linear"), ("uniform", "uniform"))]
    runs_csv = write_runs_csv(tmp_path / "flat.csv", two_rules)
    assert report.sweep_rows(report.read_runs(runs_csv)) == []
    with pytest.raises(SdnetError, match="two or more p_L values of one survival rule"):
        report.plot_p_last_figure(runs_csv, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_a_pre_activation_sweep_gets_no_paper_star(tmp_path: Path) -> None:
    """The paper trained the CIFAR ResNet-110 only: its Fig. 8 point is not a pre-act one's."""
    rows = sweep_rows(4)
    for row in rows:
        row.update(arch="preact", network="preact-resnet110")
    fig = report.plot_p_last_figure(write_runs_csv(tmp_path / "runs.csv", rows), tmp_path / "f")
    (ax,) = fig.axes
    assert ax.get_title() == "CIFAR-10, Pre-act ResNet-110"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["linear decay", "constant depth"]  # no "Huang et al. 2016"


def test_one_panel_per_network(tmp_path: Path) -> None:
    """A CIFAR and a bottleneck ResNet-50: two panels, each named."""
    from report_runs import make_run

    folders = [make_run(tmp_path / "runs", depth=50, arch=arch, variant=v, seed=s)
               for arch in ("bottleneck", "cifar") for v in ("baseline", "stochastic")
               for s in range(2)]
    runs_csv, epochs_csv = tmp_path / "runs.csv", tmp_path / "epochs.csv"
    report.aggregate(folders, runs_csv, epochs_csv)
    fig = report.plot_test_error_curves(report.read_runs(runs_csv), report.read_epochs(epochs_csv))
    assert [ax.get_title() for ax in fig.axes] == ["CIFAR-10, ResNet-50",
                                                   "CIFAR-10, CIFAR ResNet-50"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)


def test_an_epochs_csv_from_before_network_names_draws_the_same(study: SimpleNamespace) -> None:
    runs, epochs = report.read_runs(study.runs_csv), report.read_epochs(study.epochs_csv)
    new = report.plot_test_error_curves(runs, epochs)
    old = report.plot_test_error_curves(runs, epochs.drop(columns="network"))
    assert [ax.get_title() for ax in old.axes] == [ax.get_title() for ax in new.axes]
    for new_ax, old_ax in zip(new.axes, old.axes):
        assert [list(line.get_ydata()) for line in new_ax.get_lines()] == \
            [list(line.get_ydata()) for line in old_ax.get_lines()]
