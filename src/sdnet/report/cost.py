"""runs.csv -> what the grid cost: device-hours per data set, network and variant (cost.tex, .md).

One line per (report row, variant): the runs, the device they trained on, the mean device-hours
per run, the total, and the ratio of the mean to the row's constant-depth variant (the paper's
claim is that stochastic depth costs about 0.75 of it). Device-hours come from the runs'
accounting (`sdnet.train.accounting`: wall time of training and evaluation over every attempt, a
shared GPU counted by its part); a run from before that record counts its training seconds.
"""

from __future__ import annotations

import math

import pandas as pd

from sdnet.report import names, stats
from sdnet.report.styles import (
    Style,
    fmt_number,
    latex_blocks,
    latex_row,
    latex_table,
    markdown_table,
)

HEADER = (("Variant",), ("Runs",), ("Device",), ("Hours", "per run"), ("Device-", "hours"),
          ("vs constant", "depth"))


def _device_hours(runs: pd.DataFrame) -> pd.Series:
    """Each run's device-hours; the training seconds where a run has no accounting."""
    fallback = runs.train_seconds.astype(float) / 3600.0
    if "device_hours" not in runs.columns:
        return fallback
    recorded = pd.to_numeric(runs.device_hours, errors="coerce")
    return recorded.where(recorded.notna(), fallback)


def _device_label(runs: pd.DataFrame) -> pd.Series:
    """'cuda NVIDIA H200' (kind, then model); the model alone for older runs."""
    name = runs.device.astype(str)
    if "device_kind" not in runs.columns:
        return name
    kind = runs.device_kind.fillna("").astype(str)
    return (kind + " " + name).str.strip()


def cost_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, variant): runs, devices, hours per run, device-hours, ratio."""
    runs = runs.assign(_hours=_device_hours(runs), _device=_device_label(runs))
    records = []
    for row in names.rows(runs):
        cells = names.in_row(runs, row)
        reference = stats.reference_variant(cells)
        base = float(cells[cells.variant == reference]._hours.mean()) if reference else math.nan
        for variant in names.variant_order(cells):
            group = cells[cells.variant == variant]
            mean = float(group._hours.mean())
            records.append({
                **row._asdict(), "title": names.row_network(runs, row), "variant": variant,
                "runs": len(group), "device": ", ".join(sorted(set(group._device))),
                "hours_per_run": mean, "device_hours": float(group._hours.sum()),
                "ratio": mean / base if base > 0 else math.nan,
            })
    return pd.DataFrame(records)


def _cells(frame: pd.DataFrame, style: Style) -> list[list[str]]:
    return [[style.text(names.dataset_name(r.dataset)), style.text(r.title),
             style.text(r.variant), str(r.runs), style.text(r.device),
             style.hours(r.hours_per_run), style.hours(r.device_hours), fmt_number(r.ratio)]
            for r in frame.itertuples()]


def _total(frame: pd.DataFrame, style: Style) -> list[str]:
    total = float(frame.device_hours.sum())
    return ["Total", str(int(frame.runs.sum())), "", "", style.hours(total), ""]


def _caption(frame: pd.DataFrame, style: Style) -> str:
    return ("Device-hours: wall time of training and evaluation on the "
            "device, summed over every attempt and resume of every run (a GPU shared by k "
            f"runs counts 1/k of it per run). Hours per run: their mean over the variant's "
            f"{'runs' if frame.runs.max() > 1 else 'run'}. vs constant depth: that mean over "
            "the mean of the row's constant-depth variant.")


def cost_latex(runs: pd.DataFrame) -> str:
    """cost.tex: a heading per data set and network, a line per variant, the total last."""
    style = Style(latex=True)
    frame = cost_frame(runs)
    header = [latex_row([style.header(*lines) for lines in HEADER])]
    body = latex_blocks(_cells(frame, style), 2, len(HEADER))
    body += ["\\midrule", latex_row(_total(frame, style))]
    return latex_table("sdnet cost table", "What the grid cost. " + _caption(frame, style),
                       "tab:sdnet-cost",
                       "lrlrrr", header, body)


def cost_markdown(runs: pd.DataFrame) -> str:
    """cost.md: the same table (every cell filled: easy to parse)."""
    style = Style(latex=False)
    frame = cost_frame(runs)
    header = ["Data set", "Network", *(style.header(*lines) for lines in HEADER)]
    body = [*_cells(frame, style), ["", "", *_total(frame, style)]]
    return markdown_table("What the grid cost", _caption(frame, style), header, body)
