"""The paper's Fig. 8 (right): test error over p_L and network depth, as a heat map.

One panel per (data set, augmentation, survival rule) whose runs have two or more depths and
two or more p_L values of that rule (`heatmap_panels`: sdnet.grid.targets decides, for the grid
before it trains and for runs.csv here). A row per network (shallow at the top), a column
per p_L; each cell is the mean over seeds of the test error at the best-validation epoch,
written in the cell; the lowest cell of each row is outlined and in bold; beside the grid, the
same row's constant-depth mean (`survival: none`), on the same colour scale. The paper reads a
"valley" along the diagonal: deeper networks prefer smaller p_L.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from sdnet import spec
from sdnet.errors import SdnetError
from sdnet.grid import targets
from sdnet.grid.targets import HEATMAP_FIGURE
from sdnet.report import names
from sdnet.report.aggregate import read_runs
from sdnet.report.figures import style
from sdnet.settings import default_augment

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

CMAP = "viridis"


class Panel(NamedTuple):
    """One heat map: a data set, its augmentation and one survival rule."""

    dataset: str
    augment: bool
    survival: str


def heatmap_panels(runs: pd.DataFrame) -> list[Panel]:
    """The (data set, augmentation, rule) triples with >= 2 depths and >= 2 p_L values."""
    panels = [Panel(*key) for key in targets.heatmap_panels(style.points(runs))]
    known = list(spec.DATASETS)
    return sorted(panels, key=lambda p: (known.index(p.dataset) if p.dataset in known
                                         else len(known), p.dataset, not p.augment,
                                         names.rule_rank(p.survival)))


def _title(panel: Panel) -> str:
    title = f"{names.dataset_name(panel.dataset)}, {names.rule_name(panel.survival)}"
    if panel.augment != default_augment(panel.dataset):
        title += ", augmented" if panel.augment else ", no augmentation"
    return title


def _cells(runs: pd.DataFrame, panel: Panel) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """(mean error per network x p_L, constant-depth mean per network, network labels)."""
    sub = runs[(runs.dataset == panel.dataset) & (runs.augment == panel.augment)]
    gated = sub[sub.survival == panel.survival]
    networks = sorted({(int(d), str(a)) for d, a in gated[["depth", "arch"]].itertuples(
        index=False)})
    grid = gated.groupby(["depth", "arch", "p_last"]).test_error_at_best.mean().unstack("p_last")
    grid = grid.reindex(networks)
    constant = sub[sub.survival == "none"].groupby(["depth", "arch"]).test_error_at_best.mean()
    constant = constant.reindex(networks)
    labels = [names.network_name(d, a) for d, a in networks]
    return grid, constant, labels


def _text_color(norm: Normalize, value: float) -> str:
    """Black on the light end of viridis, white on the dark end."""
    return "black" if norm(value) > 0.55 else "white"


def _draw_grid(ax: Axes, values: pd.DataFrame, norm: Normalize, best: list[int | None]) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(values.to_numpy(dtype=float), cmap=CMAP, norm=norm, aspect="auto")
    for (i, j), value in pd.DataFrame(values.to_numpy()).stack().items():
        if math.isnan(value):
            continue
        bold = best[i] == j
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                fontweight="bold" if bold else "normal", color=_text_color(norm, value))
        if bold:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#D55E00", lw=1.8))
    ax.grid(False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


def plot_error_heatmap(runs: pd.DataFrame) -> Figure:
    """Mean test error per (network, p_L) with the lowest per network marked, and constant
    depth beside it; SdnetError when no data set has two depths and two p_L values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    panels = heatmap_panels(runs)
    if not panels:
        raise SdnetError("no data set in runs.csv has two or more depths and two or more p_L "
                         "values of one survival rule: no heat map to draw")
    parts = [(panel, *_cells(runs, panel)) for panel in panels]
    width = max(grid.shape[1] for _, grid, _, _ in parts)
    height = max(grid.shape[0] for _, grid, _, _ in parts)
    fig = Figure(figsize=(0.62 * (width + 1) + 2.6, (0.42 * height + 1.3) * len(parts) + 0.5),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(parts), 2, squeeze=False, width_ratios=[width, 1.15])
    for (panel, grid, constant, labels), (ax, side) in zip(parts, axes):
        values = [v for v in [*grid.to_numpy().ravel(), *constant.to_numpy()] if not pd.isna(v)]
        norm = Normalize(min(values), max(values) if max(values) > min(values) else
                         min(values) + 1)
        best = [None if row.isna().all() else int(np.nanargmin(row.to_numpy(dtype=float)))
                for _, row in grid.iterrows()]
        _draw_grid(ax, grid, norm, best)
        p_lasts = [float(p) for p in grid.columns]
        ax.set_xticks(range(len(p_lasts)), [f"{p:g}" for p in p_lasts])
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="Survival probability of the last block $p_L$", title=_title(panel))
        _draw_grid(side, constant.to_frame(), norm, [None] * len(constant))
        side.set_xticks([0], ["constant\ndepth"])
        side.set_yticks(range(len(labels)), [])
        side.tick_params(length=0)
        fig.colorbar(side.images[0], ax=side, label="Test error at best val. epoch (%)",
                     fraction=0.5, shrink=0.9)
    handles = [Patch(fill=False, ec="#D55E00", lw=1.8, label="lowest error of the network"),
               Patch(color="0.8", label="cell: mean over seeds")]
    style.legend_below(fig, handles)
    return fig


def plot_heatmap_figure(runs_csv: str | Path, out_dir: str | Path) -> Figure:
    """Write error_heatmap (.pdf and .png); SdnetError when runs.csv has no depth x p_L grid."""
    runs = read_runs(runs_csv)
    with style.figure_style():
        fig = plot_error_heatmap(runs)
        style.save_figure(fig, Path(out_dir), HEATMAP_FIGURE)
    log.info("wrote %s (.pdf, .png) in %s", HEATMAP_FIGURE, out_dir)
    return fig


def heatmap_figure_paths(out_dir: str | Path) -> list[Path]:
    """The files plot_heatmap_figure writes into out_dir."""
    return style.paths_of(out_dir, [HEATMAP_FIGURE])
