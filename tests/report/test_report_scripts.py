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


def test_gradient_and_heatmap_scripts_and_commands(tmp_path: Path, capsys) -> None:
    """aggregate with its gradients output, then both new figure scripts, the Snakemake way;
    the same steps as `sdnet report` commands; the heat map script fails on a flat grid."""
    from sdnet import cli

    folders = [make_run(tmp_path / "runs", depth=d, variant=f"linear-p_last{p}",
                        survival="linear", p_last=p, seed=s)
               for d in (20, 56) for p in (0.5, 0.8) for s in range(2)]
    metrics = tmp_path / "m"
    out = Named(runs=str(metrics / "runs.csv"), epochs=str(metrics / "epochs.csv"),
                gradients=str(metrics / "gradients.csv"))
    run_script("aggregate", input=Named(summaries=[str(f / "summary.json") for f in folders]),
               output=out, log=Named([str(tmp_path / "a.log")]))
    assert len(pd.read_csv(out.gradients)) == 8 * 4 * 3  # runs x epochs x blocks
    figures = [str(p) for p in report.gradient_figure_paths(tmp_path / "figures")]
    run_script("gradient_figures", input=Named(runs=out.runs, epochs=out.epochs,
                                               gradients=out.gradients),
               output=Named(figures), log=Named([str(tmp_path / "g.log")]))
    heatmap = [str(p) for p in report.heatmap_figure_paths(tmp_path / "figures")]
    run_script("heatmap_figure", input=Named(runs=out.runs), output=Named(heatmap),
               log=Named([str(tmp_path / "h.log")]))
    assert all(Path(p).stat().st_size > 5000 for p in figures + heatmap)
    flat = write_runs_csv(tmp_path / "flat.csv", sweep_rows(4))  # one depth: no heat map
    with pytest.raises(SystemExit):
        run_script("heatmap_figure", input=Named(runs=str(flat)),
                   output=Named([str(p) for p in report.heatmap_figure_paths(tmp_path / "x")]),
                   log=Named([str(tmp_path / "x.log")]))
    assert "no heat map to draw" in (tmp_path / "x.log").read_text()
    cli_out = tmp_path / "cli"
    assert cli.main(["report", "aggregate", *map(str, folders), "--out-runs",
                     str(cli_out / "runs.csv"), "--out-epochs", str(cli_out / "epochs.csv"),
                     "--out-gradients", str(cli_out / "gradients.csv")]) == 0
    assert (cli_out / "gradients.csv").read_bytes() == Path(out.gradients).read_bytes()
    assert cli.main(["report", "gradient-figures", "--runs", out.runs, "--epochs", out.epochs,
                     "--gradients", out.gradients, "--out-dir", str(cli_out)]) == 0
    assert cli.main(["report", "heatmap", "--runs", out.runs, "--out-dir", str(cli_out)]) == 0
    assert cli.main(["report", "heatmap", "--runs", str(flat), "--out-dir", str(cli_out)]) == 2
    assert "no heat map to draw" in capsys.readouterr().err
    assert sorted(p.name for p in cli_out.glob("*.png")) == [
        "error_heatmap.png", "gradient_magnitude.png", "gradient_profile.png"]


def test_glue_helpers() -> None:
    assert report.as_paths("a.csv") == [Path("a.csv")]
    assert report.as_paths(["a", Path("b")]) == [Path("a"), Path("b")]
    assert report.as_flag("yes", "x") is True and report.as_flag(0, "x") is False
    with pytest.raises(SdnetError, match="x must be true or false"):
        report.as_flag("maybe", "x")
