"""workflow/scripts/*.py, run the way Snakemake runs them (a `snakemake` object in the globals),
and the glue they use (sdnet.report.script_support)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from report_runs import Named, make_run, run_script, sweep_rows, write_runs_csv

from sdnet import report
from sdnet.errors import SdnetError


def test_aggregate_script_the_snakemake_way(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v) for v in ("baseline", "stochastic")]
    out = Named(runs=str(tmp_path / "m" / "runs.csv"), epochs=str(tmp_path / "m" / "epochs.csv"))
    log = tmp_path / "logs" / "aggregate.log"
    log.parent.mkdir()
    run_script("aggregate", input=Named(summaries=[str(f / "summary.json") for f in folders]),
               output=out, log=Named([str(log)]))
    assert len(pd.read_csv(tmp_path / "m" / "runs.csv")) == 2
    assert "aggregated 2 run(s)" in log.read_text()
    (folders[1] / "metrics.csv").unlink()
    with pytest.raises(SystemExit) as exit_:
        run_script("aggregate", input=Named(summaries=[str(f / "summary.json") for f in folders]),
                   output=out, log=Named([str(log)]))
    assert exit_.value.code == 1
    assert str(folders[1]) in log.read_text() and "no metrics.csv" in log.read_text()


def test_comparisons_then_tables_scripts(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(2))
    comparisons = tmp_path / "metrics" / "comparisons.csv"
    run_script("comparisons", input=Named(runs=str(runs_csv)),
               output=Named(comparisons=str(comparisons)), log=Named([str(tmp_path / "c.log")]))
    assert list(pd.read_csv(comparisons).columns) == list(report.COMPARISON_COLUMNS)
    assert "wrote 1 comparison(s)" in (tmp_path / "c.log").read_text()
    outputs = [str(tmp_path / "t" / n) for n in report.TABLES]
    run_script("tables", input=Named(runs=str(runs_csv), comparisons=str(comparisons)),
               output=Named(outputs), log=Named([str(tmp_path / "t.log")]))
    assert all(Path(p).stat().st_size for p in outputs)
    assert "Welch" in (tmp_path / "t" / "summary.tex").read_text()


def test_tables_script_checks_its_declared_outputs(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(2))
    log = tmp_path / "tables.log"
    with pytest.raises(SystemExit):
        run_script("tables", input=Named(runs=str(runs_csv)),
                   output=Named([str(tmp_path / "t" / "results.tex")]), log=Named([str(log)]))
    assert "results.tex is not one of the files" in log.read_text()


def test_figures_script_rejects_a_bad_log_scale(tmp_path: Path) -> None:
    log = tmp_path / "figures.log"
    with pytest.raises(SystemExit):
        run_script("figures", input=Named(runs="runs.csv", epochs="epochs.csv"),
                   output=Named([str(p) for p in report.figure_paths(tmp_path / "f")]),
                   params=Named(log_scale="sometimes"), log=Named([str(log)]))
    assert "params.log_scale must be true or false" in log.read_text()


def test_p_last_figure_script(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(4))
    outputs = [str(p) for p in report.p_last_figure_paths(tmp_path / "figures")]
    run_script("p_last_figure", input=Named(runs=str(runs_csv)), output=Named(outputs),
               log=Named([str(tmp_path / "p.log")]))
    assert all(Path(p).stat().st_size > 5000 for p in outputs)
    flat = write_runs_csv(tmp_path / "flat.csv", sweep_rows(2))  # one p_L: nothing to sweep
    with pytest.raises(SystemExit):
        run_script("p_last_figure", input=Named(runs=str(flat)),
                   output=Named([str(p) for p in report.p_last_figure_paths(tmp_path / "g")]),
                   log=Named([str(tmp_path / "g.log")]))
    assert "nothing to plot against p_L" in (tmp_path / "g.log").read_text()


def test_glue_helpers() -> None:
    assert report.as_paths("a.csv") == [Path("a.csv")]
    assert report.as_paths(["a", Path("b")]) == [Path("a"), Path("b")]
    assert report.as_flag("yes", "x") is True and report.as_flag(0, "x") is False
    with pytest.raises(SdnetError, match="x must be true or false"):
        report.as_flag("maybe", "x")
