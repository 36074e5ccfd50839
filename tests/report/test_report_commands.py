"""`sdnet report ...`, the one door to the report: each step as the workflow's rules run it
(workflow/rules/report.smk), its progress and errors in the rule's log, its files the ones
sdnet.grid.targets names (the rules' declared outputs)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_runs import make_run, sweep_rows, write_runs_csv

from sdnet import cli, report
from sdnet.grid import targets

SDNET = Path(sys.executable).with_name("sdnet")


def sdnet_report(*args: str | Path, log: Path) -> int:
    """One step exactly as a report rule's shell line runs it: `sdnet report ... > log 2>&1`."""
    line = shlex.join([str(SDNET), "report", *map(str, args)])
    return subprocess.run(f"{line} > {shlex.quote(str(log))} 2>&1", shell=True,
                          check=False, timeout=600).returncode


def test_aggregate_the_rule_way(tmp_path: Path) -> None:
    """The rule passes every summary.json; the log says what was done, or which folder is
    incomplete (one line, exit status 2)."""
    folders = [make_run(tmp_path / "runs", variant=v) for v in ("baseline", "stochastic")]
    summaries = [f / "summary.json" for f in folders]
    m, log = tmp_path / "m", tmp_path / "aggregate.log"
    outputs = ("--out-runs", m / "runs.csv", "--out-epochs", m / "epochs.csv",
               "--out-gradients", m / "gradients.csv")
    assert sdnet_report("aggregate", *summaries, *outputs, log=log) == 0
    assert len(pd.read_csv(m / "runs.csv")) == 2
    assert "aggregated 2 run(s)" in log.read_text()
    (folders[1] / "metrics.csv").unlink()
    assert sdnet_report("aggregate", *summaries, *outputs, log=log) == 2
    text = log.read_text()
    assert str(folders[1]) in text and "no metrics.csv" in text
    assert "Traceback" not in text


def test_compare_then_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(2))
    comparisons = tmp_path / "metrics" / "comparisons.csv"
    assert cli.main(["report", "compare", "--runs", str(runs_csv), "--out",
                     str(comparisons)]) == 0
    assert list(pd.read_csv(comparisons).columns) == list(report.COMPARISON_COLUMNS)
    assert "wrote 1 comparison(s)" in capsys.readouterr().err
    out = tmp_path / "t"
    assert cli.main(["report", "tables", "--runs", str(runs_csv), "--comparisons",
                     str(comparisons), "--out-dir", str(out)]) == 0
    # exactly the files the rule declares (sdnet.grid.targets), none empty
    assert sorted(p.name for p in out.iterdir()) == sorted(targets.table_files())
    assert all(p.stat().st_size for p in out.iterdir())
    assert "Welch" in (out / "summary.tex").read_text()


def test_one_epoch_is_singular(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v, epochs=1) for v in ("baseline", "stochastic")]
    report.aggregate(folders, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    report.render_tables(tmp_path / "runs.csv", tmp_path / "t")
    text = (tmp_path / "t" / "summary.md").read_text() + (tmp_path / "t" / "summary.tex").read_text()
    assert "trained for 1 epoch." in text and "1 epochs" not in text


def test_figures_and_the_log_scale_flag(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v, seed=s)
               for v in ("baseline", "stochastic") for s in range(2)]
    runs, epochs = tmp_path / "runs.csv", tmp_path / "epochs.csv"
    report.aggregate(folders, runs, epochs)
    for scale, folder in (("--log-scale", "log"), ("--no-log-scale", "linear")):
        assert cli.main(["report", "figures", "--runs", str(runs), "--epochs", str(epochs),
                         scale, "--out-dir", str(tmp_path / folder)]) == 0
    names = targets.figure_files(targets.FIGURES)
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == sorted(names)
    curves = "test_error_curves.png"
    assert (tmp_path / "log" / curves).read_bytes() != (tmp_path / "linear" / curves).read_bytes()
    assert (tmp_path / "log" / "final_error.png").read_bytes() == (
        tmp_path / "linear" / "final_error.png").read_bytes()


def test_p_last_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(4))
    out = tmp_path / "figures"
    assert cli.main(["report", "p-last-figure", "--runs", str(runs_csv), "--out-dir",
                     str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == targets.figure_files([targets.SWEEP_FIGURE])
    assert all(p.stat().st_size > 5000 for p in out.iterdir())
    flat = write_runs_csv(tmp_path / "flat.csv", sweep_rows(2))  # one p_L: nothing to sweep
    assert cli.main(["report", "p-last-figure", "--runs", str(flat), "--out-dir",
                     str(tmp_path / "g")]) == 2
    assert "nothing to plot against p_L" in capsys.readouterr().err


def test_gradient_and_heatmap_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """aggregate with gradients.csv, then both figures; the heat map fails on a flat grid."""
    folders = [make_run(tmp_path / "runs", depth=d, variant=f"linear-p_last{p}",
                        survival="linear", p_last=p, seed=s)
               for d in (20, 56) for p in (0.5, 0.8) for s in range(2)]
    m, out = tmp_path / "m", tmp_path / "figures"
    assert cli.main(["report", "aggregate", *map(str, folders), "--out-runs",
                     str(m / "runs.csv"), "--out-epochs", str(m / "epochs.csv"),
                     "--out-gradients", str(m / "gradients.csv")]) == 0
    assert len(pd.read_csv(m / "gradients.csv")) == 8 * 4 * 3  # runs x epochs x blocks
    assert cli.main(["report", "gradient-figures", "--runs", str(m / "runs.csv"), "--epochs",
                     str(m / "epochs.csv"), "--gradients", str(m / "gradients.csv"),
                     "--out-dir", str(out)]) == 0
    assert cli.main(["report", "heatmap", "--runs", str(m / "runs.csv"), "--out-dir",
                     str(out)]) == 0
    expected = targets.figure_files([*targets.GRADIENT_FIGURES, targets.HEATMAP_FIGURE])
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert all(p.stat().st_size > 5000 for p in out.iterdir())
    flat = write_runs_csv(tmp_path / "flat.csv", sweep_rows(4))  # one depth: no heat map
    assert cli.main(["report", "heatmap", "--runs", str(flat), "--out-dir",
                     str(tmp_path / "x")]) == 2
    assert "no heat map to draw" in capsys.readouterr().err
