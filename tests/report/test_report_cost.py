"""sdnet.report.cost: the cost table (runs, device, hours per run, device-hours, stochastic over
constant depth, the total), from runs.csv with and without accounting columns; it fits a page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from report_runs import compile_latex, markdown_table, runs_row, write_runs_csv

from sdnet import report
from sdnet.report import cost


def rows_with_cost() -> list[dict]:
    gpu = {"device": "NVIDIA H200", "device_kind": "cuda"}
    rows = [runs_row(variant="baseline", seed=s, device_hours=8.0 + s, **gpu) for s in range(2)]
    rows += [runs_row(variant="stochastic", seed=s, survival="linear", p_last=0.5,
                      device_hours=6.0 + s, **gpu) for s in range(2)]
    rows += [runs_row("cinic10", 20, "baseline", 0, device_hours=0.5, **gpu)]
    return rows


def test_cost_lines_per_variant_with_ratio_and_total(tmp_path: Path) -> None:
    runs = report.read_runs(write_runs_csv(tmp_path / "runs.csv", rows_with_cost()))
    frame = cost.cost_frame(runs)
    lines = {(r.dataset, r.variant): r for r in frame.itertuples()}
    base, stoch = lines["cifar10", "baseline"], lines["cifar10", "stochastic"]
    assert (base.runs, base.hours_per_run, base.device_hours) == (2, 8.5, 17.0)
    assert (stoch.hours_per_run, stoch.device_hours) == (6.5, 13.0)
    assert stoch.ratio == pytest.approx(6.5 / 8.5) and base.ratio == 1.0
    assert stoch.device == "cuda NVIDIA H200"
    header, *body = markdown_table(cost.cost_markdown(runs))
    assert header[:5] == ["Data set", "Network", "Variant", "Runs", "Device"]
    assert body[1][2:] == ["stochastic", "2", "cuda NVIDIA H200", "6.50", "13.00", "0.76"]
    assert body[-1][2:4] == ["Total", "5"] and body[-1][6] == "30.50"
    tex = cost.cost_latex(runs)
    assert "\\label{tab:sdnet-cost}" in tex and "\\emph{CIFAR-10, ResNet-110}" in tex
    assert "Total & 5 &  &  & 30.50 &  \\\\" in tex


def test_runs_without_accounting_count_their_training_seconds(tmp_path: Path) -> None:
    rows = [runs_row(variant="baseline", seed=s, seconds=7200.0) for s in range(2)]
    runs = report.read_runs(write_runs_csv(tmp_path / "runs.csv", rows))
    [line] = cost.cost_frame(runs).itertuples()
    assert line.device_hours == pytest.approx(4.0) and line.device == "cuda:0"


def test_render_tables_writes_the_cost_table_and_it_fits_a_page(tmp_path: Path) -> None:
    paths = report.render_tables(write_runs_csv(tmp_path / "runs.csv", rows_with_cost()),
                                 tmp_path / "t")
    assert {"cost.tex", "cost.md"} <= set(paths)
    assert "nan" not in paths["cost.md"].read_text().lower()
    log = compile_latex([paths["cost.tex"]], tmp_path / "latex")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
