"""sdnet.report.figures: the figures from hand-made runs; error against p_L from a small sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from report_runs import (
    BLOCKS,
    aggregated_study,
    grad,
    make_run,
    runs_row,
    sweep_rows,
    write_runs_csv,
)

from sdnet import report
from sdnet.errors import SdnetError


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    study = aggregated_study(tmp_path_factory.mktemp("study"))
    study.figures = report.plot_figures(study.runs_csv, study.epochs_csv, study.root / "figures")
    study.gradient_figures = report.plot_gradient_figures(
        study.runs_csv, study.epochs_csv, study.gradients_csv, study.root / "figures")
    report.render_tables(study.runs_csv, study.root / "tables")
    return study


def test_figures_written_as_pdf_and_png(study: SimpleNamespace) -> None:
    for path in [*report.figure_paths(study.root / "figures"),
                 *report.gradient_figure_paths(study.root / "figures")]:
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
            "report.plot_figures(sys.argv[1], sys.argv[2], sys.argv[4]); "
            "report.plot_gradient_figures(sys.argv[1], sys.argv[2], sys.argv[5], sys.argv[4])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    args = [str(study.runs_csv), str(study.epochs_csv), str(tmp_path / "tables"),
            str(tmp_path / "figures"), str(study.gradients_csv)]
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, timeout=120)
    for name in report.TABLES:
        assert (tmp_path / "tables" / name).read_bytes() == \
            (study.root / "tables" / name).read_bytes(), name
    for path in [*report.figure_paths(tmp_path / "figures"),
                 *report.gradient_figure_paths(tmp_path / "figures")]:
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


# ------------------------------------------------------------------------- bands inside [0, 100]


def _band_extent(ax) -> tuple[float, float]:
    """Lowest and highest y of the shaded bands (fill_between) of one panel."""
    ys = [v[1] for c in ax.collections if c.get_paths()
          for path in c.get_paths() for v in path.vertices]
    return min(ys), max(ys)


def test_bands_are_the_range_over_seeds_and_stay_inside_0_100(tmp_path: Path) -> None:
    """Errors close to 0 % with a wide spread: a mean +- 1 std band would go below 0."""
    folders = [make_run(tmp_path / "runs", depth=8, variant="baseline", seed=s, epochs=3,
                        test_error_at_best=e) for s, e in enumerate([0.5, 9.5])]
    folders += [make_run(tmp_path / "runs", depth=8, variant=f"linear-p_last{p}", seed=s,
                         survival="linear", p_last=p, epochs=3, test_error_at_best=e)
                for p in (0.5, 0.8) for s, e in enumerate([0.2, 12.0])]
    runs_csv, epochs_csv = tmp_path / "runs.csv", tmp_path / "epochs.csv"
    report.aggregate(folders, runs_csv, epochs_csv)
    runs, epochs = report.read_runs(runs_csv), report.read_epochs(epochs_csv)
    for fig in (report.plot_test_error_curves(runs, epochs, log_scale=False),
                report.plot_error_vs_p_last(runs)):
        (ax,) = fig.axes
        low, high = _band_extent(ax)
        assert low >= 0.0 and high <= 100.0
        assert fig.legends[0].get_title().get_text() == "mean over seeds, band: range over seeds"
    low, high = _band_extent(report.plot_error_vs_p_last(runs).axes[0])
    assert (low, high) == pytest.approx((0.2, 12.0))  # exactly the seeds' extremes


# ------------------------------------------------------------------------- gradient strength


def test_gradient_magnitude_is_the_papers_figure_7(study: SimpleNamespace) -> None:
    fig = study.gradient_figures["gradient_magnitude"]
    cifar = fig.axes[0]
    assert [ax.get_title() for ax in fig.axes] == ["CIFAR-10, ResNet-110", "CINIC-10, ResNet-20"]
    assert cifar.get_yscale() == "log" and cifar.get_xlabel() == "Epoch"
    assert cifar.get_ylabel() == "Mean |gradient|, block 1 conv. 1"
    baseline, stochastic = cifar.get_lines()[:2]  # variant order: constant depth first
    # seeds 0, 1, 2 of grad(1, e, seed): mean factor 1.1; stochastic variants 1.5x that
    assert list(baseline.get_ydata()) == pytest.approx([0.011 / e for e in range(1, 5)])
    assert list(stochastic.get_ydata()) == pytest.approx([0.0165 / e for e in range(1, 5)])
    assert len(cifar.collections) >= 2  # the bands of the two variants with 3 seeds
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["baseline", "stochastic"] and "lr divided" not in labels  # no drop


def test_gradient_profile_at_start_before_each_lr_drop_and_end(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", depth=8, variant=v, survival=r, p_last=0.5, seed=s,
                        epochs=6, milestones=(2, 4)) for v, r in (("baseline", "none"),
                                                                 ("uniform", "uniform"))
               for s in range(2)]
    csvs = [tmp_path / f"{name}.csv" for name in ("runs", "epochs", "gradients")]
    report.aggregate(folders, *csvs)
    figures = report.plot_gradient_figures(*csvs, tmp_path / "figures")
    magnitude = figures["gradient_magnitude"].axes[0]
    drops = [line.get_xdata()[0] for line in magnitude.get_lines() if line.get_linestyle() == ":"]
    assert drops == [2.5, 4.5]  # between the last epoch at the old lr and the first at the new
    profile = figures["gradient_profile"]
    assert [ax.get_title().split("\n")[1] for ax in profile.axes] == [
        "epoch 1 (start)", "epoch 2 (before lr drop)", "epoch 4 (before lr drop)", "epoch 6 (end)"]
    first = profile.axes[0]
    assert first.get_xlabel() == "Residual block" and first.get_yscale() == "log"
    baseline, uniform = first.get_lines()
    assert list(baseline.get_xdata()) == [1, 2, 3]
    assert list(baseline.get_ydata()) == pytest.approx([grad(b, 1) * 1.05 for b in (1, 2, 3)])
    # the uniform variant's last block never ran: no point there (not 0, not NaN drawn)
    assert list(uniform.get_xdata()) == [1, 2]
    last = profile.axes[3]
    assert last.get_lines()[0].get_ydata()[0] == pytest.approx(grad(1, 6) * 1.05)


def test_runs_from_before_gradients_get_a_note_not_an_error(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v, seed=s, gradients=False)
               for v in ("baseline", "stochastic") for s in range(2)]
    csvs = [tmp_path / f"{name}.csv" for name in ("runs", "epochs", "gradients")]
    report.aggregate(folders, *csvs)
    assert csvs[2].read_text() == ("dataset,network,depth,variant,seed,epoch,block,"
                                   "mean_abs_grad,active_steps\n")
    assert report.read_epochs(csvs[1]).grad_first_conv.isna().all()
    figures = report.plot_gradient_figures(*csvs, tmp_path / "figures")
    for fig in figures.values():
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert texts and all(t.startswith("no gradients recorded") for t in texts)
    for path in report.gradient_figure_paths(tmp_path / "figures"):
        assert path.stat().st_size > 3000


def test_gradient_figures_from_real_trainer_runs(tmp_path: Path, prepared_cifar10: Path) -> None:
    """Two real ResNet-8 runs (constant and stochastic depth, 2 epochs) through aggregate into
    both figures: the trainer's files are what the figure code reads."""
    from sdnet.train import loop as train

    folders = []
    for variant, survival in (("baseline", "none"), ("stochastic", "linear")):
        out = tmp_path / "runs" / "cifar10" / "resnet8" / variant / "seed0"
        train.train(train.TrainConfig(data=prepared_cifar10, dataset="cifar10", depth=8, out=out,
                                      epochs=2, batch_size=32, lr=0.05, milestones=[1],
                                      limit_train=96, seed=0, survival=survival,
                                      variant=variant))
        folders.append(out)
    csvs = [tmp_path / f"{name}.csv" for name in ("runs", "epochs", "gradients")]
    report.aggregate(folders, *csvs)
    gradients = report.read_gradients(csvs[2])
    assert len(gradients) == 2 * 2 * BLOCKS and (gradients.active_steps >= 0).all()
    figures = report.plot_gradient_figures(*csvs, tmp_path / "figures")
    magnitude = figures["gradient_magnitude"].axes[0]
    means = [line for line in magnitude.get_lines() if line.get_linestyle() != ":"]
    assert len(means) == 2 and all((line.get_ydata() > 0).all() for line in means)
    assert len(figures["gradient_profile"].axes) == 2  # epochs 1 (start, also before the drop), 2


# ------------------------------------------------------------------------- the heat map


def small_grid(root: Path) -> list[Path]:
    """2 depths x 2 p_L x 2 seeds of linear decay plus constant depth, at the demo's sizes
    (ResNet-8 and ResNet-20, 6 epochs, lr /10 after epoch 5)."""
    errors = {(8, 0.5): 30.0, (8, 0.8): 26.0, (20, 0.5): 20.0, (20, 0.8): 22.0}
    folders = []
    for (depth, p_last), error in errors.items():
        for seed in range(2):
            folders.append(make_run(root, depth=depth, variant=f"linear-p_last{p_last}",
                                    survival="linear", p_last=p_last, seed=seed, epochs=6,
                                    milestones=(5,), test_error_at_best=error + seed))
    for depth in (8, 20):
        for seed in range(2):
            folders.append(make_run(root, depth=depth, variant="baseline", seed=seed, epochs=6,
                                    milestones=(5,), test_error_at_best=28.0 - depth / 4 + seed))
    return folders


def test_heatmap_and_gradient_figures_from_a_small_grid(tmp_path: Path) -> None:
    csvs = [tmp_path / f"{name}.csv" for name in ("runs", "epochs", "gradients")]
    report.aggregate(small_grid(tmp_path / "runs"), *csvs)
    runs = report.read_runs(csvs[0])
    assert report.heatmap_panels(runs) == [("cifar10", True, "linear")]
    fig = report.plot_heatmap_figure(csvs[0], tmp_path / "figures")
    for path in report.heatmap_figure_paths(tmp_path / "figures"):
        assert path.stat().st_size > 5000, path
    grid, side = fig.axes[:2]
    assert grid.get_title() == "CIFAR-10, linear decay"
    assert [t.get_text() for t in grid.get_yticklabels()] == ["ResNet-8", "ResNet-20"]
    assert [t.get_text() for t in grid.get_xticklabels()] == ["0.5", "0.8"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in grid.texts}
    assert {k: t.get_text() for k, t in cells.items()} == {
        (0, 0): "30.50", (0, 1): "26.50", (1, 0): "20.50", (1, 1): "22.50"}
    bold = sorted(k for k, t in cells.items() if t.get_fontweight() == "bold")
    assert bold == [(0, 1), (1, 0)]  # the lowest p_L cell of each depth: the valley
    assert len(grid.patches) == 2  # their outlines
    assert [t.get_text() for t in side.texts] == ["26.50", "23.50"]  # constant depth beside
    figures = report.plot_gradient_figures(*csvs, tmp_path / "figures")
    assert len(figures["gradient_magnitude"].axes) == 2  # ResNet-8, ResNet-20
    assert len(figures["gradient_profile"].axes) == 2 * 3  # epochs 1, 5 (before drop), 6


def test_no_heatmap_without_both_axes(study: SimpleNamespace, tmp_path: Path) -> None:
    assert report.heatmap_panels(report.read_runs(study.runs_csv)) == []  # one depth per data set
    one_depth = write_runs_csv(tmp_path / "sweep.csv", sweep_rows(4))  # p_L varies, depth not
    assert report.heatmap_panels(report.read_runs(one_depth)) == []
    rows = [runs_row(depth=d, variant="stochastic", seed=0, survival="linear", p_last=0.5)
            for d in (20, 56)]  # depth varies, p_L not
    two_depths = write_runs_csv(tmp_path / "depths.csv", rows)
    assert report.heatmap_panels(report.read_runs(two_depths)) == []
    with pytest.raises(SdnetError, match="two or more depths and two or more p_L"):
        report.plot_heatmap_figure(two_depths, tmp_path / "none")
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
