"""What every figure shares: the fixed style, the panel grid, colours, the seed band, the legend
under the panels, log axes, and byte-reproducible PDF/PNG files.

Bands over seeds are the **range** (lowest to highest seed), never mean +- std: a range stays
inside what it measures (an error in [0, 100], a gradient above 0), and with the few seeds of a
grid (2 to 5) it hides nothing. Every figure that draws one names it in its legend
(`BAND_LEGEND`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sdnet.atomic import atomic_open
from sdnet.grid import targets
from sdnet.grid.targets import FIGURE_FORMATS
from sdnet.report.aggregate import RUN_KEYS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe & Ito (2008) colour-blind-safe palette, black left out (used for means and text).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
BAND_LEGEND = "mean over seeds, band: range over seeds"

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
def figure_style() -> Iterator[None]:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(FIGURE_RC):
        yield


def new_figure(panels: int, legend_rows: int = 1, columns: int | None = None,
               sharey: bool | str = False) -> tuple[Figure, list[Axes]]:
    """A Figure on the Agg canvas (no pyplot state) with one axes per panel, `columns` (at most
    MAX_COLUMNS unless given) per row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = columns or min(panels, MAX_COLUMNS)
    nrows = math.ceil(panels / ncols)
    size = (PANEL_SIZE[0] * ncols + 0.4, PANEL_SIZE[1] * nrows + 0.25 * legend_rows + 0.2)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in grid[panels:]:
        fig.delaxes(ax)
    return fig, list(grid[:panels])


def colors(order: Sequence[str]) -> dict[str, str]:
    return {v: OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(order)}


def with_augment(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """epochs.csv (or gradients.csv) rows with their run's augment setting (a report row
    needs it); an epochs.csv from before network names takes its runs' network too, matched
    on the depth."""
    keys = list(RUN_KEYS) if "network" in frame.columns else [
        "dataset", "depth", "variant", "seed"]
    taken = [*dict.fromkeys([*keys, "network", "augment"])]
    return frame.merge(runs[taken], on=keys, how="left", validate="many_to_one")


def seed_offsets(n: int, width: float = 0.24) -> list[float]:
    """Fixed horizontal spread for n seed points (no random jitter: same bytes every time)."""
    return [0.0] if n == 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]


def legend_below(fig: Figure, handles: list, title: str | None = None) -> None:
    """Legend under the panels, never over the data."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               frameon=False, title=title, title_fontsize=8)


def variant_axis(ax: Axes, present: list[str]) -> None:
    rotate = len(present) > 3 or max(len(v) for v in present) > 10
    ax.set_xticks(range(len(present)), present, rotation=25 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(present) - 0.4)
    ax.grid(False, axis="x")


def plain_log_axis(ax: Axes) -> None:
    """Log y axis labelled 5, 10, 20 rather than 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def seed_stats(values: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    """Per x: mean, lowest, highest and number of seeds (missing values left out)."""
    return values.agg(["mean", "min", "max", "count"]).dropna(subset=["mean"])


def draw_mean_and_band(ax: Axes, stats: pd.DataFrame, color: str, marker: bool = False) -> None:
    """The mean line and, where two or more seeds are there, the range band."""
    x = stats.index.to_numpy(dtype=float)
    ax.plot(x, stats["mean"].to_numpy(), color=color, lw=1.2,
            marker="o" if marker or len(x) < 3 else None, ms=3)
    several = stats["count"] > 1
    if several.any():
        low = stats["min"].where(several, stats["mean"]).to_numpy()
        high = stats["max"].where(several, stats["mean"]).to_numpy()
        ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)


def lr_drops(epochs: pd.DataFrame) -> list[int]:
    """Epochs after which the learning rate falls (1-based: the last epoch at the old rate),
    from epochs.csv's lr column; the union over the runs given."""
    drops: set[int] = set()
    for _, run in epochs.groupby(list(RUN_KEYS), sort=False):
        run = run.sort_values("epoch")
        lr, epoch = run.lr.to_numpy(dtype=float), run.epoch.to_numpy()
        drops.update(int(epoch[i]) for i in range(len(lr) - 1) if lr[i + 1] < lr[i] * (1 - 1e-9))
    return sorted(drops)


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Each format in turn; the layout is solved once (on the first save) and then frozen."""
    paths = []
    for i, fmt in enumerate(FIGURE_FORMATS):
        if i:
            fig.set_layout_engine("none")
        path = Path(out_dir) / f"{name}.{fmt}"
        meta = PDF_METADATA if fmt == "pdf" else PNG_METADATA
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=fmt, metadata=meta)
        paths.append(path)
    return paths


def paths_of(out_dir: str | Path, names: Sequence[str]) -> list[Path]:
    """The files of `names` (each .pdf and .png) in out_dir."""
    return [Path(out_dir) / f"{n}.{f}" for n in names for f in FIGURE_FORMATS]


def points(runs: pd.DataFrame) -> list[targets.Point]:
    """runs.csv's rows as what sdnet.grid.targets decides a figure's panels from."""
    columns = ["dataset", "network", "depth", "augment", "survival", "p_last"]
    return [targets.Point(str(d), str(n), int(depth), bool(a), str(s), float(p))
            for d, n, depth, a, s, p in runs[columns].itertuples(index=False)]
