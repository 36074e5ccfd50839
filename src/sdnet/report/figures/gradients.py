"""Gradient strength: the paper's Fig. 7 (`gradient_magnitude`) and every block's profile
(`gradient_profile`), from epochs.csv's grad_first_conv and the aggregated gradients.csv.

- gradient_magnitude: per epoch, the mean |gradient| of the first residual block's first
  convolution (averaged over the steps in which the block ran), one line per variant (mean over
  seeds, band: range over seeds), log axis, dotted lines where the learning rate drops; one
  panel per data set and network.
- gradient_profile: the same figure for every block against its index, at a few epochs (the
  first, the last before each lr drop, the last), one line per variant; a row of panels per
  data set and network, one panel per epoch (sharing the row's y axis).

A run trained before sdnet recorded gradients has none: its panel says so instead of failing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sdnet.grid.targets import GRADIENT_FIGURES
from sdnet.report import names
from sdnet.report.aggregate import read_epochs, read_gradients, read_runs
from sdnet.report.figures import style
from sdnet.report.figures.style import BAND_LEGEND, draw_mean_and_band, seed_stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

FIRST_CONV_LABEL = "Mean |gradient|, block 1 conv. 1"
NO_DATA = "no gradients recorded\n(runs from before sdnet measured them)"


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize=8,
            color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _lr_lines(ax: Axes, drops: list[int]) -> None:
    """Dotted lines between the last epoch at the old rate and the first at the new one."""
    for epoch in drops:
        ax.axvline(epoch + 0.5, color="0.3", lw=0.9, ls=":", zorder=1)


def _log_axis(ax: Axes) -> None:
    from matplotlib.ticker import LogFormatterSciNotation

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatterSciNotation())


def plot_gradient_magnitude(runs: pd.DataFrame, epochs: pd.DataFrame) -> Figure:
    """Fig. 7: the first convolution's mean |gradient| per epoch, a line per variant."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = style.colors(order)
    epochs = style.with_augment(epochs, runs)
    if "grad_first_conv" not in epochs.columns:
        epochs = epochs.assign(grad_first_conv=float("nan"))
    fig, axes = style.new_figure(len(panels))
    any_drop = False
    for ax, row in zip(axes, panels):
        sub = names.in_row(epochs, row)
        ax.set_title(names.row_title(runs, row))
        if sub.grad_first_conv.isna().all():
            _no_data(ax)
            continue
        for variant in order:
            curve = sub[sub.variant == variant].groupby("epoch").grad_first_conv
            stats = seed_stats(curve) if len(curve) else pd.DataFrame()
            if len(stats):
                draw_mean_and_band(ax, stats, colors[variant])
        drops = style.lr_drops(sub)
        any_drop = any_drop or bool(drops)
        _lr_lines(ax, drops)
        _log_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.set(xlabel="Epoch", ylabel=FIRST_CONV_LABEL)
    handles = [Line2D([], [], color=colors[v], lw=1.5, label=v) for v in order]
    if any_drop:
        handles.append(Line2D([], [], color="0.3", lw=0.9, ls=":", label="lr divided"))
    style.legend_below(fig, handles, BAND_LEGEND)
    return fig


def profile_epochs(epochs: pd.DataFrame) -> list[tuple[int, str]]:
    """(epoch, why) for the profile: the first, the last before each lr drop, the last."""
    last = int(epochs.epoch.max())
    chosen = {1: "start"}
    for drop in style.lr_drops(epochs):
        chosen.setdefault(drop, "before lr drop")
    chosen.setdefault(last, "end")
    return sorted(chosen.items())


def plot_gradient_profile(runs: pd.DataFrame, epochs: pd.DataFrame,
                          gradients: pd.DataFrame) -> Figure:
    """Every block's first-convolution mean |gradient| against its index, at a few epochs."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    order, rows = names.variant_order(runs), names.rows(runs)
    colors = style.colors(order)
    epochs, gradients = style.with_augment(epochs, runs), style.with_augment(gradients, runs)
    chosen = {row: profile_epochs(names.in_row(epochs, row)) for row in rows}
    columns = max(len(c) for c in chosen.values())
    fig, axes = style.new_figure(len(rows) * columns, columns=columns, sharey="row")
    for r, row in enumerate(rows):
        sub = names.in_row(gradients, row)
        title = names.row_title(runs, row)
        row_axes = axes[r * columns:(r + 1) * columns]
        for c, ax in enumerate(row_axes):
            if c >= len(chosen[row]):
                ax.set_visible(False)
                continue
            epoch, why = chosen[row][c]
            ax.set_title(f"{title}\nepoch {epoch} ({why})")
            at = sub[sub.epoch == epoch]
            if at.mean_abs_grad.isna().all():
                _no_data(ax)
                continue
            for variant in order:
                points = at[at.variant == variant].groupby("block").mean_abs_grad
                stats = seed_stats(points) if len(points) else pd.DataFrame()
                if len(stats):
                    draw_mean_and_band(ax, stats, colors[variant])
            _log_axis(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
            ax.set_xlabel("Residual block")
            if c == 0:
                ax.set_ylabel("Mean |gradient|, conv. 1")
    handles = [Line2D([], [], color=colors[v], lw=1.5, label=v) for v in order]
    style.legend_below(fig, handles, BAND_LEGEND + "; a block's mean over the steps it ran")
    return fig


def plot_gradient_figures(runs_csv: str | Path, epochs_csv: str | Path,
                          gradients_csv: str | Path, out_dir: str | Path) -> dict[str, Figure]:
    """Write gradient_magnitude and gradient_profile (.pdf and .png); return the Figures."""
    runs, epochs = read_runs(runs_csv), read_epochs(epochs_csv)
    gradients = read_gradients(gradients_csv)
    out = Path(out_dir)
    with style.figure_style():
        figures = {"gradient_magnitude": plot_gradient_magnitude(runs, epochs),
                   "gradient_profile": plot_gradient_profile(runs, epochs, gradients)}
        for name, fig in figures.items():
            style.save_figure(fig, out, name)
    log.info("wrote %s (.pdf, .png) in %s", ", ".join(figures), out)
    return figures


def gradient_figure_paths(out_dir: str | Path) -> list[Path]:
    """Every file plot_gradient_figures writes into out_dir."""
    return style.paths_of(out_dir, GRADIENT_FIGURES)
