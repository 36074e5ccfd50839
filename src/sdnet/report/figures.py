"""runs.csv + epochs.csv -> the figures: error curves, final error, epoch time, error vs p_L.

Each figure has one panel per report row (data set, network, augmentation), Okabe-Ito colours,
the legend under the panels, and the same bytes for the same inputs (no timestamps, fixed
style whatever the user's matplotlibrc says). `error_vs_p_last` (paper Fig. 8, left) is drawn
only for rows whose grid sweeps p_L: two or more values of one survival rule.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sdnet.errors import SdnetError
from sdnet.io import atomic_open
from sdnet.report import names, paper
from sdnet.report.aggregate import RUN_KEYS, read_epochs, read_runs
from sdnet.report.stats import reference_variant

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# Okabe & Ito (2008) colour-blind-safe palette, black left out (used for means and text).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
FIGURES = ("test_error_curves", "final_error", "epoch_time")
SWEEP_FIGURE = "error_vs_p_last"
FIGURE_FORMATS = ("pdf", "png")

# Fixed style, whatever the user's matplotlibrc says; TrueType fonts in PDFs (journals want them).
FIGURE_RC = {
    "svg.hashsalt": "sdnet", "pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 9,
    "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "savefig.dpi": 200,
}
# No timestamps or software versions in the files: the same inputs give the same bytes.
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
PNG_METADATA = {"Software": None}
PANEL_SIZE = (3.4, 2.7)  # inches per panel
MAX_COLUMNS = 3


@contextlib.contextmanager
def _figure_style() -> Iterator[None]:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(FIGURE_RC):
        yield


def _new_figure(panels: int, legend_rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A Figure on the Agg canvas (no pyplot state) with one axes per panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(panels, MAX_COLUMNS)
    nrows = math.ceil(panels / ncols)
    size = (PANEL_SIZE[0] * ncols + 0.4, PANEL_SIZE[1] * nrows + 0.25 * legend_rows + 0.2)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[panels:]:
        fig.delaxes(ax)
    return fig, list(grid[:panels])


def _colors(order: Sequence[str]) -> dict[str, str]:
    return {v: OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(order)}


def _with_augment(epochs: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """epochs.csv rows with their run's augment setting (a report row needs it); an epochs.csv
    from before network names takes its runs' network too, matched on the depth."""
    keys = list(RUN_KEYS) if "network" in epochs.columns else [
        "dataset", "depth", "variant", "seed"]
    taken = [*dict.fromkeys([*keys, "network", "augment"])]
    return epochs.merge(runs[taken], on=keys, how="left", validate="many_to_one")


def _seed_offsets(n: int, width: float = 0.24) -> list[float]:
    """Fixed horizontal spread for n seed points (no random jitter: same bytes every time)."""
    return [0.0] if n == 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]


def _legend_below(fig: Figure, handles: list, title: str | None = None) -> None:
    """Legend under the panels, never over the data."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               frameon=False, title=title, title_fontsize=8)


def _variant_axis(ax: Axes, present: list[str]) -> None:
    rotate = len(present) > 3 or max(len(v) for v in present) > 10
    ax.set_xticks(range(len(present)), present, rotation=25 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(present) - 0.4)
    ax.grid(False, axis="x")


def _plain_log_axis(ax: Axes) -> None:
    """Log y axis labelled 5, 10, 20 rather than 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def plot_test_error_curves(runs: pd.DataFrame, epochs: pd.DataFrame,
                           log_scale: bool = True) -> Figure:
    """Test error vs epoch, one panel per data set x network, mean +- std band over seeds."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = _colors(order)
    epochs = _with_augment(epochs, runs)
    use_log = log_scale and bool((epochs.test_error > 0).all())
    if log_scale and not use_log:
        log.warning("a test error of 0 %% cannot go on a log axis; using a linear axis")
    fig, axes = _new_figure(len(panels))
    for ax, row in zip(axes, panels):
        sub = names.in_row(epochs, row)
        for variant in order:
            curve = sub[sub.variant == variant].groupby("epoch").test_error
            if not len(curve):
                continue
            stats = curve.agg(["mean", "std", "count"])
            x, mean = stats.index.to_numpy(), stats["mean"].to_numpy()
            ax.plot(x, mean, color=colors[variant], lw=1.2, marker="o" if len(x) < 3 else None,
                    ms=3)
            spread = stats["std"].where(stats["count"] > 1).to_numpy()
            if not pd.isna(spread).all():
                low = mean - spread
                low = low.clip(min=mean.min() / 2) if use_log else low
                ax.fill_between(x, low, mean + spread, color=colors[variant], alpha=0.2, lw=0)
        if use_log:
            _plain_log_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.set(xlabel="Epoch", ylabel="Test error (%)", title=names.row_title(runs, row))
    handles = [Line2D([], [], color=colors[v], lw=1.5, label=v) for v in order]
    _legend_below(fig, handles, "mean over seeds, band: ±1 std")
    return fig


def plot_final_error(runs: pd.DataFrame) -> Figure:
    """Test error at the best-validation epoch: seeds as dots, the mean a bar, the paper a star."""
    from matplotlib.lines import Line2D

    order, panels = names.variant_order(runs), names.rows(runs)
    colors = _colors(order)
    fig, axes = _new_figure(len(panels))
    any_paper = False
    for ax, row in zip(axes, panels):
        sub = names.in_row(runs, row)
        present = [v for v in order if v in set(sub.variant)]
        for i, variant in enumerate(present):
            group = sub[sub.variant == variant].sort_values("seed")
            values = group.test_error_at_best.to_numpy()
            xs = [i + dx for dx in _seed_offsets(len(values))]
            ax.scatter(xs, values, s=20, color=colors[variant], alpha=0.85, lw=0, zorder=3)
            ax.hlines(values.mean(), i - 0.25, i + 0.25, color="black", lw=1.5, zorder=4)
            first = group.iloc[0]
            reported = paper.paper_test_error(row.dataset, row.depth, first.survival,
                                              first.p_last, row.augment, row.arch)
            if reported is not None:
                any_paper = True
                ax.scatter([i + 0.34], [reported], marker="*", s=60, facecolor="white",
                           edgecolor="black", lw=0.8, zorder=4)
        _variant_axis(ax, present)
        ax.set(xlabel="Variant", ylabel="Test error at best val. epoch (%)",
               title=names.row_title(runs, row))
    handles = [Line2D([], [], ls="", marker="o", color="grey", label="one seed"),
               Line2D([], [], color="black", lw=1.5, label="mean over seeds")]
    if any_paper:
        handles.append(Line2D([], [], ls="", marker="*", ms=9, markerfacecolor="white",
                              markeredgecolor="black", label=paper.PAPER_CITATION))
    _legend_below(fig, handles)
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
    colors = _colors(order)
    fig, axes = _new_figure(len(panels))
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
            xs = [i + dx for dx in _seed_offsets(len(values), 0.3)]
            ax.scatter(xs, values, s=10, color="black", lw=0, zorder=3)
            if base:
                ax.annotate(f"{mean / base:.2f}×", (i, max(float(values.max()), mean)),
                            xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8)
        _variant_axis(ax, present)
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
        ax.set(xlabel="Variant", ylabel="Training time per epoch (s)",
               title=names.row_title(runs, row))
    handles = [Patch(color="grey", alpha=0.85, label="mean over seeds"),
               Line2D([], [], ls="", marker="o", ms=4, color="black", label="one seed")]
    _legend_below(fig, handles, "numbers: time relative to constant depth")
    return fig


def sweep_rows(runs: pd.DataFrame) -> list[names.Row]:
    """Report rows where some survival rule has two or more p_L values (a p_L sweep)."""
    swept = []
    for row in names.rows(runs):
        sub = names.in_row(runs, row)
        sub = sub[sub.survival != "none"]
        if (sub.groupby("survival").p_last.nunique() >= 2).any():
            swept.append(row)
    return swept


def _rule_colors(runs: pd.DataFrame) -> dict[str, str]:
    rules = sorted(set(runs.survival) - {"none"}, key=names.rule_rank)
    return {rule: OKABE_ITO[i % len(OKABE_ITO)] for i, rule in enumerate(rules)}


def plot_error_vs_p_last(runs: pd.DataFrame) -> Figure:
    """Test error against p_L, a line per rule (mean, band: +-1 std over seeds), paper Fig. 8.

    One panel per row that sweeps p_L; constant depth is the dashed line, the paper a star.
    """
    from matplotlib.lines import Line2D

    panels = sweep_rows(runs)
    if not panels:
        raise SdnetError("no data set and network in runs.csv has two or more p_L values of "
                         "one survival rule: nothing to plot against p_L")
    colors = _rule_colors(runs)
    fig, axes = _new_figure(len(panels))
    any_paper = any_constant = False
    for ax, row in zip(axes, panels):
        sub = names.in_row(runs, row)
        for rule, color in colors.items():
            points = sub[sub.survival == rule].groupby("p_last").test_error_at_best
            if not len(points):
                continue
            stats = points.agg(["mean", "std", "count"])
            x, mean = stats.index.to_numpy(dtype=float), stats["mean"].to_numpy()
            ax.plot(x, mean, color=color, lw=1.2, marker="o", ms=3.5)
            spread = stats["std"].where(stats["count"] > 1).to_numpy()
            if not pd.isna(spread).all():
                ax.fill_between(x, mean - spread, mean + spread, color=color, alpha=0.2, lw=0)
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
    _legend_below(fig, handles, "mean over seeds, band: ±1 std")
    return fig


def _save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Each format in turn; the layout is solved once (on the first save) and then frozen."""
    paths = []
    for i, fmt in enumerate(FIGURE_FORMATS):
        if i:
            fig.set_layout_engine("none")
        path = out_dir / f"{name}.{fmt}"
        meta = PDF_METADATA if fmt == "pdf" else PNG_METADATA
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=fmt, metadata=meta)
        paths.append(path)
    return paths


def plot_figures(runs_csv: str | Path, epochs_csv: str | Path, out_dir: str | Path,
                 *, log_scale: bool = True) -> dict[str, Figure]:
    """Write test_error_curves, final_error, epoch_time (.pdf and .png); return the Figures."""
    runs, epochs = read_runs(runs_csv), read_epochs(epochs_csv)
    out = Path(out_dir)
    with _figure_style():
        figures = {"test_error_curves": plot_test_error_curves(runs, epochs, log_scale),
                   "final_error": plot_final_error(runs),
                   "epoch_time": plot_epoch_time(runs)}
        for name, fig in figures.items():
            _save_figure(fig, out, name)
    log.info("wrote %s (.pdf, .png) in %s", ", ".join(figures), out)
    return figures


def plot_p_last_figure(runs_csv: str | Path, out_dir: str | Path) -> Figure:
    """Write error_vs_p_last (.pdf and .png); SdnetError when runs.csv sweeps no p_L."""
    runs = read_runs(runs_csv)
    with _figure_style():
        fig = plot_error_vs_p_last(runs)
        _save_figure(fig, Path(out_dir), SWEEP_FIGURE)
    log.info("wrote %s (.pdf, .png) in %s", SWEEP_FIGURE, out_dir)
    return fig


def figure_paths(out_dir: str | Path) -> list[Path]:
    """Every file plot_figures writes into out_dir."""
    return [Path(out_dir) / f"{n}.{f}" for n in FIGURES for f in FIGURE_FORMATS]


def p_last_figure_paths(out_dir: str | Path) -> list[Path]:
    """The files plot_p_last_figure writes into out_dir."""
    return [Path(out_dir) / f"{SWEEP_FIGURE}.{f}" for f in FIGURE_FORMATS]
