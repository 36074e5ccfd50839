"""runs.csv + epochs.csv -> the error figures: error curves, final error, epoch time, error vs p_L.

Each figure has one panel per report row (data set, network, augmentation), Okabe-Ito colours,
the legend under the panels, and the same bytes for the same inputs (style.py). Bands are the
range over seeds. `error_vs_p_last` (paper Fig. 8, left) is drawn only for rows whose grid
sweeps p_L: two or more values of one survival rule.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sdnet.errors import SdnetError
from sdnet.grid import targets
from sdnet.grid.targets import FIGURES, SWEEP_FIGURE
from sdnet.report import names, paper
from sdnet.report.aggregate import read_epochs, read_runs
from sdnet.report.figures import style
from sdnet.report.figures.style import BAND_LEGEND, OKABE_ITO, draw_mean_and_band, seed_stats
from sdnet.report.stats import reference_variant

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


def plot_test_error_curves(runs: pd.DataFrame, epochs: pd.DataFrame,
                           log_scale: bool = True) -> Figure:
    """Test error vs epoch, one panel per data set x network, the range over seeds as a band."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = style.colors(order)
    epochs = style.with_augment(epochs, runs)
    use_log = log_scale and bool((epochs.test_error > 0).all())
    if log_scale and not use_log:
        log.warning("a test error of 0 % cannot go on a log axis; using a linear axis")
    fig, axes = style.new_figure(len(panels))
    for ax, row in zip(axes, panels):
        sub = names.in_row(epochs, row)
        for variant in order:
            curve = sub[sub.variant == variant].groupby("epoch").test_error
            if not len(curve):
                continue
            draw_mean_and_band(ax, seed_stats(curve), colors[variant])
        if use_log:
            style.plain_log_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.set(xlabel="Epoch", ylabel="Test error (%)", title=names.row_title(runs, row))
    handles = [Line2D([], [], color=colors[v], lw=1.5, label=v) for v in order]
    style.legend_below(fig, handles, BAND_LEGEND)
    return fig


def plot_final_error(runs: pd.DataFrame) -> Figure:
    """Test error at the best-validation epoch: seeds as dots, the mean a bar, the paper a star."""
    from matplotlib.lines import Line2D

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = style.colors(order)
    fig, axes = style.new_figure(len(panels))
    any_paper = False
    for ax, row in zip(axes, panels):
        sub = names.in_row(runs, row)
        present = [v for v in order if v in set(sub.variant)]
        for i, variant in enumerate(present):
            group = sub[sub.variant == variant].sort_values("seed")
            values = group.test_error_at_best.to_numpy()
            xs = [i + dx for dx in style.seed_offsets(len(values))]
            ax.scatter(xs, values, s=20, color=colors[variant], alpha=0.85, lw=0, zorder=3)
            ax.hlines(values.mean(), i - 0.25, i + 0.25, color="black", lw=1.5, zorder=4)
            first = group.iloc[0]
            reported = paper.paper_test_error(row.dataset, row.depth, first.survival,
                                              first.p_last, row.augment, row.arch)
            if reported is not None:
                any_paper = True
                ax.scatter([i + 0.34], [reported], marker="*", s=60, facecolor="white",
                           edgecolor="black", lw=0.8, zorder=4)
        style.variant_axis(ax, present)
        ax.set(xlabel="Variant", ylabel="Test error at best val. epoch (%)",
               title=names.row_title(runs, row))
    handles = [Line2D([], [], ls="", marker="o", color="grey", label="one seed"),
               Line2D([], [], color="black", lw=1.5, label="mean over seeds")]
    if any_paper:
        handles.append(Line2D([], [], ls="", marker="*", ms=9, markerfacecolor="white",
                              markeredgecolor="black", label=paper.PAPER_CITATION))
    style.legend_below(fig, handles)
    return fig


def _baseline_seconds(sub: pd.DataFrame) -> float | None:
    """Mean seconds per epoch of the constant-depth variant of one panel (the statistics'
    reference variant)."""
    reference = reference_variant(sub)
    if reference is None:
        return None
    return float(sub[sub.variant == reference].mean_epoch_seconds.mean())


def plot_epoch_time(runs: pd.DataFrame) -> Figure:
    """Seconds per training epoch per variant: the time stochastic depth saves."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = style.colors(order)
    fig, axes = style.new_figure(len(panels))
    for ax, row in zip(axes, panels):
        sub = names.in_row(runs, row)
        present = [v for v in order if v in set(sub.variant)]
        base = _baseline_seconds(sub)
        top = 0.0
        for i, variant in enumerate(present):
            values = sub[sub.variant == variant].sort_values("seed").mean_epoch_seconds.to_numpy()
            mean = float(values.mean())
            top = max(top, float(values.max()), mean)
            ax.bar(i, mean, width=0.6, color=colors[variant], alpha=0.85, zorder=2)
            xs = [i + dx for dx in style.seed_offsets(len(values), 0.3)]
            ax.scatter(xs, values, s=10, color="black", lw=0, zorder=3)
            if base:
                ax.annotate(f"{mean / base:.2f}×", (i, max(float(values.max()), mean)),
                            xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8)
        style.variant_axis(ax, present)
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
        ax.set(xlabel="Variant", ylabel="Training time per epoch (s)",
               title=names.row_title(runs, row))
    handles = [Patch(color="grey", alpha=0.85, label="mean over seeds"),
               Line2D([], [], ls="", marker="o", ms=4, color="black", label="one seed")]
    style.legend_below(fig, handles, "numbers: time relative to constant depth")
    return fig


def sweep_rows(runs: pd.DataFrame) -> list[names.Row]:
    """Report rows where some survival rule has two or more p_L values (a p_L sweep: the
    grid's decision, sdnet.grid.targets)."""
    swept = targets.p_last_sweeps(style.points(runs))
    return [row for row in names.rows(runs) if tuple(row) in swept]


def _rule_colors(runs: pd.DataFrame) -> dict[str, str]:
    rules = sorted(set(runs.survival) - {"none"}, key=names.rule_rank)
    return {rule: OKABE_ITO[i % len(OKABE_ITO)] for i, rule in enumerate(rules)}


def plot_error_vs_p_last(runs: pd.DataFrame) -> Figure:
    """Test error against p_L, a line per rule (mean, band: range over seeds), paper Fig. 8.

    One panel per row that sweeps p_L; constant depth is the dashed line, the paper a star.
    """
    from matplotlib.lines import Line2D

    panels = sweep_rows(runs)
    if not panels:
        raise SdnetError("no data set and network in runs.csv has two or more p_L values of "
                         "one survival rule: nothing to plot against p_L")
    colors = _rule_colors(runs)
    fig, axes = style.new_figure(len(panels))
    any_paper = any_constant = False
    for ax, row in zip(axes, panels):
        sub = names.in_row(runs, row)
        for rule, color in colors.items():
            points = sub[sub.survival == rule].groupby("p_last").test_error_at_best
            if not len(points):
                continue
            draw_mean_and_band(ax, seed_stats(points), color, marker=True)
        reference = reference_variant(sub)
        if reference is not None:
            any_constant = True
            ax.axhline(float(sub[sub.variant == reference].test_error_at_best.mean()),
                       color="black", lw=1.0, ls="--")
        ticks = set(sub[sub.survival != "none"].p_last.astype(float))
        for rule in colors:
            reported = paper.paper_test_error(row.dataset, row.depth, rule, paper.PAPER_P_LAST,
                                              row.augment, row.arch)
            if reported is not None and rule in set(sub.survival):
                any_paper = True
                ticks.add(paper.PAPER_P_LAST)
                ax.scatter([paper.PAPER_P_LAST], [reported], marker="*", s=60, zorder=4,
                           facecolor="white", edgecolor="black", lw=0.8)
        ticks = sorted(ticks)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], rotation=45 if len(ticks) > 6 else 0)
        ax.set(xlabel="Survival probability of the last block $p_L$",
               ylabel="Test error at best val. epoch (%)", title=names.row_title(runs, row))
    handles = [Line2D([], [], color=c, lw=1.5, marker="o", ms=3.5, label=names.rule_name(r))
               for r, c in colors.items()]
    if any_constant:
        handles.append(Line2D([], [], color="black", lw=1.0, ls="--",
                              label=names.rule_name("none")))
    if any_paper:
        handles.append(Line2D([], [], ls="", marker="*", ms=9, markerfacecolor="white",
                              markeredgecolor="black", label=paper.PAPER_CITATION))
    style.legend_below(fig, handles, BAND_LEGEND)
    return fig


def plot_figures(runs_csv: str | Path, epochs_csv: str | Path, out_dir: str | Path,
                 *, log_scale: bool = True) -> dict[str, Figure]:
    """Write test_error_curves, final_error, epoch_time (.pdf and .png); return the Figures."""
    runs, epochs = read_runs(runs_csv), read_epochs(epochs_csv)
    out = Path(out_dir)
    with style.figure_style():
        figures = {"test_error_curves": plot_test_error_curves(runs, epochs, log_scale),
                   "final_error": plot_final_error(runs),
                   "epoch_time": plot_epoch_time(runs)}
        for name, fig in figures.items():
            style.save_figure(fig, out, name)
    log.info("wrote %s (.pdf, .png) in %s", ", ".join(figures), out)
    return figures


def plot_p_last_figure(runs_csv: str | Path, out_dir: str | Path) -> Figure:
    """Write error_vs_p_last (.pdf and .png); SdnetError when runs.csv sweeps no p_L."""
    runs = read_runs(runs_csv)
    with style.figure_style():
        fig = plot_error_vs_p_last(runs)
        style.save_figure(fig, Path(out_dir), SWEEP_FIGURE)
    log.info("wrote %s (.pdf, .png) in %s", SWEEP_FIGURE, out_dir)
    return fig


def figure_paths(out_dir: str | Path) -> list[Path]:
    """Every file plot_figures writes into out_dir."""
    return style.paths_of(out_dir, FIGURES)


def p_last_figure_paths(out_dir: str | Path) -> list[Path]:
    """The files plot_p_last_figure writes into out_dir."""
    return style.paths_of(out_dir, [SWEEP_FIGURE])
