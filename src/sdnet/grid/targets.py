"""Which figures and tables a grid makes: decided here once, torch- and pandas-free.

Two callers ask the same question of different inputs: the Snakefile layer of the grid's runs
before anything trained (which figure files `rule all` wants), and `sdnet.report` of runs.csv
(which panels a figure draws). Both reduce their runs to `Point`s and call the functions below,
so a figure is asked for exactly when the report can draw it.

- `error_vs_p_last` (paper Fig. 8, left): only when some report row (data set, network,
  augmentation) has two or more p_L values of one survival rule (`p_last_sweeps`);
- `error_heatmap` (paper Fig. 8, right): only when some (data set, augmentation, survival rule)
  has two or more depths and two or more p_L values (`heatmap_panels`);
- every other figure and every table: always.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

FIGURES = ("test_error_curves", "final_error", "epoch_time")  # `sdnet report figures`
GRADIENT_FIGURES = ("gradient_magnitude", "gradient_profile")  # `sdnet report gradient-figures`
SWEEP_FIGURE = "error_vs_p_last"  # `sdnet report p-last-figure`
HEATMAP_FIGURE = "error_heatmap"  # `sdnet report heatmap`
FIGURE_FORMATS = ("pdf", "png")
TABLES = ("summary", "per_seed", "cost")  # `sdnet report tables`
TABLE_FORMATS = ("tex", "md")


class Point(NamedTuple):
    """What the decision needs of one run (a grid.Run before training, a runs.csv row after)."""

    dataset: str
    network: str
    depth: int
    augment: bool
    survival: str
    p_last: float


def points(runs: Iterable) -> list[Point]:
    """The grid's runs (`sdnet.grid.runs`) as Points: augment is resolved by the cascade."""
    return [Point(run.dataset, run.network, int(run.depth), bool(run.settings["augment"]),
                  str(run.settings["survival"]), float(run.settings["p_last"]))
            for run in runs]


def p_last_sweeps(runs: Iterable[Point]) -> set[tuple[str, str, bool]]:
    """The (data set, network, augmentation) rows where one survival rule has >= 2 p_L values."""
    values: dict[tuple, set[float]] = {}
    for p in runs:
        if p.survival != "none":
            key = (p.dataset, p.network, bool(p.augment), p.survival)
            values.setdefault(key, set()).add(float(p.p_last))
    return {key[:3] for key, p_lasts in values.items() if len(p_lasts) >= 2}


def heatmap_panels(runs: Iterable[Point]) -> set[tuple[str, bool, str]]:
    """The (data set, augmentation, survival rule) triples with >= 2 depths and >= 2 p_L."""
    axes: dict[tuple, tuple[set[int], set[float]]] = {}
    for p in runs:
        if p.survival != "none":
            depths, p_lasts = axes.setdefault((p.dataset, bool(p.augment), p.survival),
                                              (set(), set()))
            depths.add(int(p.depth))
            p_lasts.add(float(p.p_last))
    return {key for key, (d, p) in axes.items() if len(d) >= 2 and len(p) >= 2}


def figure_names(runs: Iterable[Point]) -> list[str]:
    """Every figure of these runs, in the order the report draws them."""
    runs = list(runs)
    return [*FIGURES, *GRADIENT_FIGURES, *([SWEEP_FIGURE] if p_last_sweeps(runs) else []),
            *([HEATMAP_FIGURE] if heatmap_panels(runs) else [])]


def figure_files(names: Iterable[str]) -> list[str]:
    """'test_error_curves.pdf', 'test_error_curves.png', ... of these figures."""
    return [f"{name}.{ext}" for name in names for ext in FIGURE_FORMATS]


def table_files() -> list[str]:
    """'summary.tex', 'summary.md', ... : every file `sdnet report tables` writes."""
    return [f"{name}.{ext}" for name in TABLES for ext in TABLE_FORMATS]
