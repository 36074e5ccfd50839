"""sdnet.report on hand-made run folders that follow the sdnet.train contract (docs/DESIGN.md)."""

from __future__ import annotations

import csv
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from sdnet import report
from sdnet.errors import SdnetError

REPO = Path(__file__).resolve().parents[1]
METRICS_HEADER = ["epoch", "lr", "train_loss", "train_error", "val_error", "test_error",
                  "epoch_seconds", "blocks_computed"]
VARIANTS = {  # variant -> (survival, p_last), as config.yaml names them
    "baseline": ("none", 0.5),
    "stochastic": ("linear", 0.5),
    "uniform_p05": ("uniform", 0.5),
}


def make_run(root: Path, *, dataset: str = "cifar10", depth: int = 110, variant: str = "baseline",
             seed: int = 0, test_error_at_best: float = 6.0, epochs: int = 4,
             epoch_seconds: float = 75.0, val: bool = True, arch: str | None = None) -> Path:
    """Write one finished run folder exactly as sdnet.train does; return the folder."""
    survival, p_last = VARIANTS.get(variant, ("linear", 0.5))
    arch = arch or ("bottleneck" if depth == 50 else "cifar")
    folder = root / dataset / f"resnet{depth}" / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    best_epoch = epochs - 1 if epochs > 1 and val else epochs
    rows = []
    for epoch in range(1, epochs + 1):
        test = test_error_at_best if epoch == best_epoch else test_error_at_best + 40.0 / epoch
        rows.append([epoch, 0.1, 2.0 / epoch, test + 1.0, (test - 0.5) if val else "", test,
                     epoch_seconds + epoch * 0.01, 1.0 if survival == "none" else 0.75])
    with open(folder / "metrics.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRICS_HEADER)
        writer.writerows(rows)
    final = rows[-1][5]
    settings = {"data": f"resources/data/{dataset}", "dataset": dataset, "depth": depth,
                "arch": None, "shortcut": "A", "survival": survival, "p_last": p_last,
                "variant": variant, "seed": seed, "epochs": epochs, "batch_size": 128, "lr": 0.1,
                "milestones": [250, 375], "gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                "nesterov": True, "warmup_epochs": 0, "limit_train": None, "device": "auto",
                "amp": True, "channels_last": True}
    summary = {
        "settings": settings, "variant": variant, "dataset": dataset, "depth": depth,
        "arch": arch, "seed": seed, "survival": survival, "p_last": p_last,
        "parameters": 1730714, "device": "cuda:0",
        "versions": {"python": "3.11.2", "torch": "2.14.1", "sdnet": "0.1.0"},
        "epochs": epochs, "best_epoch": best_epoch,
        "best_val_error": rows[best_epoch - 1][4] if val else None,
        "test_error_at_best": test_error_at_best, "final_test_error": final,
        "train_seconds": sum(r[6] for r in rows), "mean_epoch_seconds":
            sum(r[6] for r in rows) / epochs,
        "peak_memory_mb": 812.5, "survival_probabilities": [1.0, 0.75, 0.5],
        "expected_block_fraction": 1.0 if survival == "none" else 0.75,
        "mean_blocks_computed": rows[0][7],
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


# test errors at the best-validation epoch, per (dataset, depth, variant): one value per seed
ERRORS = {
    ("cifar10", 110, "baseline"): [6.5, 6.3, 6.7],   # mean 6.50, std 0.20
    ("cifar10", 110, "stochastic"): [5.2, 5.4, 5.3],  # mean 5.30, std 0.10
    ("cifar10", 110, "uniform_p05"): [5.9],           # one seed
    ("cinic10", 20, "baseline"): [12.0, 14.0],        # mean 13.00, std 1.41
    ("cinic10", 20, "stochastic"): [13.0, 13.5],      # mean 13.25, std 0.35
}
SECONDS = {"baseline": 75.0, "stochastic": 60.0, "uniform_p05": 50.0}


def make_study(root: Path) -> list[Path]:
    folders = []
    for (dataset, depth, variant), errors in ERRORS.items():
        for seed, error in enumerate(errors):
            folders.append(make_run(root, dataset=dataset, depth=depth, variant=variant, seed=seed,
                                    test_error_at_best=error, epoch_seconds=SECONDS[variant]))
    return folders


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Hand-made runs, aggregated, tables rendered and figures plotted once for the module."""
    root = tmp_path_factory.mktemp("study")
    folders = make_study(root / "runs")
    runs_csv, epochs_csv = root / "metrics" / "runs.csv", root / "metrics" / "epochs.csv"
    runs, epochs = report.aggregate(list(reversed(folders)), runs_csv, epochs_csv)
    tables = report.render_tables(runs_csv, root / "tables")
    figures = report.plot_figures(runs_csv, epochs_csv, root / "figures")
    return SimpleNamespace(root=root, folders=folders, runs_csv=runs_csv, epochs_csv=epochs_csv,
                           runs=runs, epochs=epochs, tables=tables, figures=figures)


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"variant": str, "dataset": str})


# --------------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------------

def test_runs_csv_one_sorted_row_per_run_with_known_numbers(study: SimpleNamespace) -> None:
    runs = read_csv(study.runs_csv)
    assert len(runs) == sum(len(v) for v in ERRORS.values()) == 11
    keys = list(zip(runs.dataset, runs.depth, runs.variant, runs.seed))
    assert keys == sorted(keys)
    for (dataset, depth, variant), errors in ERRORS.items():
        group = runs[(runs.dataset == dataset) & (runs.depth == depth) & (runs.variant == variant)]
        assert group.sort_values("seed").test_error_at_best.tolist() == pytest.approx(errors)
    stats = runs.groupby(["dataset", "depth", "variant"]).test_error_at_best.agg(["mean", "std"])
    assert stats.loc[("cifar10", 110, "baseline")].tolist() == pytest.approx([6.5, 0.2])
    assert stats.loc[("cifar10", 110, "stochastic")].tolist() == pytest.approx([5.3, 0.1])
    assert stats.loc[("cinic10", 20, "baseline")].tolist() == pytest.approx([13.0, 2 ** 0.5])


def test_runs_csv_flattens_settings_and_final_numbers(study: SimpleNamespace) -> None:
    runs = read_csv(study.runs_csv)
    for column in ("variant", "dataset", "depth", "arch", "seed", "survival", "p_last", "epochs",
                   "best_epoch", "best_val_error", "test_error_at_best", "final_test_error",
                   "train_seconds", "mean_epoch_seconds", "parameters", "device",
                   "mean_blocks_computed", "run_dir", "batch_size", "milestones", "lr",
                   "version_torch"):
        assert column in runs.columns, column
    assert list(runs.columns[:5]) == ["dataset", "depth", "arch", "variant", "seed"]
    first = runs.iloc[0]
    assert first.milestones == "[250,375]"
    assert first.device == "cuda:0" and first.setting_device == "auto"  # used vs asked
    assert "survival_probabilities" not in runs.columns
    assert set(runs.run_dir) == {str(f) for f in study.folders}


def test_epochs_csv_one_row_per_run_epoch(study: SimpleNamespace) -> None:
    epochs = read_csv(study.epochs_csv)
    assert list(epochs.columns) == ["dataset", "depth", "variant", "seed", *METRICS_HEADER]
    assert len(epochs) == 11 * 4
    keys = list(zip(epochs.dataset, epochs.depth, epochs.variant, epochs.seed, epochs.epoch))
    assert keys == sorted(keys)
    one = epochs[(epochs.variant == "stochastic") & (epochs.dataset == "cifar10")
                 & (epochs.seed == 1)]
    assert one.test_error.tolist() == pytest.approx([5.4 + 40, 5.4 + 20, 5.4, 5.4 + 10])


def test_aggregate_is_deterministic_whatever_the_input_order(study: SimpleNamespace,
                                                              tmp_path: Path) -> None:
    summaries = [f / "summary.json" for f in study.folders]  # the workflow passes these
    report.aggregate(summaries, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    assert (tmp_path / "runs.csv").read_bytes() == study.runs_csv.read_bytes()
    assert (tmp_path / "epochs.csv").read_bytes() == study.epochs_csv.read_bytes()


def _drop_summary(folder: Path) -> None:
    (folder / "summary.json").unlink()


def _drop_metrics(folder: Path) -> None:
    (folder / "metrics.csv").unlink()


def _bad_json(folder: Path) -> None:
    (folder / "summary.json").write_text('{"variant": "baseline", ')


def _drop_column(folder: Path) -> None:
    frame = pd.read_csv(folder / "metrics.csv").drop(columns="test_error")
    frame.to_csv(folder / "metrics.csv", index=False)


def _fewer_epochs(folder: Path) -> None:
    lines = (folder / "metrics.csv").read_text().splitlines()
    (folder / "metrics.csv").write_text("\n".join(lines[:-1]) + "\n")


def _drop_field(folder: Path) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    del summary["test_error_at_best"]
    (folder / "summary.json").write_text(json.dumps(summary))


def _text_in_numbers(folder: Path) -> None:
    text = (folder / "metrics.csv").read_text().replace("\n2,", "\ntwo,")
    (folder / "metrics.csv").write_text(text)


@pytest.mark.parametrize("damage, words", [
    (_drop_summary, "no summary.json"), (_drop_metrics, "no metrics.csv"),
    (_bad_json, "cannot parse"), (_drop_column, "lacks column(s) test_error"),
    (_fewer_epochs, "3 epoch row(s)"), (_drop_field, "lacks test_error_at_best"),
    (_text_in_numbers, "non-numeric"),
])
def test_incomplete_or_malformed_run_folder_is_named(tmp_path: Path, damage, words: str) -> None:
    good = make_run(tmp_path / "runs", variant="baseline")
    bad = make_run(tmp_path / "runs", variant="stochastic")
    damage(bad)
    with pytest.raises(SdnetError) as err:
        report.aggregate([good, bad], tmp_path / "runs.csv", tmp_path / "epochs.csv")
    assert str(bad) in str(err.value) and words in str(err.value)
    assert not (tmp_path / "runs.csv").exists()  # nothing half-written


def test_same_run_twice_and_no_runs_are_errors(tmp_path: Path) -> None:
    folder = make_run(tmp_path / "a")
    copy = tmp_path / "b" / "seed0"
    shutil.copytree(folder, copy)
    with pytest.raises(SdnetError, match="same run"):
        report.aggregate([folder, copy], tmp_path / "r.csv", tmp_path / "e.csv")
    with pytest.raises(SdnetError, match="no run folders"):
        report.aggregate([], tmp_path / "r.csv", tmp_path / "e.csv")


def test_cli_prints_one_line_and_exits_2_for_an_incomplete_run(tmp_path: Path, capsys) -> None:
    from sdnet import cli

    folder = make_run(tmp_path / "runs")
    _drop_metrics(folder)
    code = cli.main(["report", "aggregate", str(folder), "--out-runs", str(tmp_path / "r.csv"),
                     "--out-epochs", str(tmp_path / "e.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(folder) in err


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------

def test_summary_tex_means_stds_bold_paper_and_ratio(study: SimpleNamespace) -> None:
    tex = (study.root / "tables" / "summary.tex").read_text()
    assert tex.startswith("%") and "booktabs" in tex.splitlines()[1]
    for command in ("\\toprule", "\\midrule", "\\bottomrule", "\\label{tab:sdnet-summary}",
                    "\\caption{", "\\begin{table}", "\\end{table}"):
        assert command in tex, command
    body = tex[tex.index("\\midrule"):]
    # baseline n=3, stochastic n=3 on CIFAR-10 but n=2 on CINIC-10: n per cell for both
    assert "$6.50 \\pm 0.20$ (3)" in body
    assert "$\\mathbf{5.30 \\pm 0.10}$ (3)" in body  # best of the CIFAR-10 row
    assert "$\\mathbf{13.00 \\pm 1.41}$ (2)" in body  # best of the CINIC-10 row
    assert "$13.25 \\pm 0.35$ (2)" in body
    assert "$5.90$" in body and "(n = 1)" in tex  # one seed: no std, n in the header
    assert body.count("\\mathbf") == 2
    assert "nan" not in tex.lower()
    assert "CIFAR-10" in body and "CINIC-10" in body and "ResNet-110" in body
    cifar_row = next(line for line in body.splitlines() if line.startswith("ResNet-110"))
    assert "& 6.41 &" in cifar_row and "& 5.25 &" in cifar_row
    assert cifar_row.rstrip(" \\").endswith("0.80")  # 60 s / 75 s per epoch
    cinic_row = next(line for line in body.splitlines() if line.startswith("ResNet-20"))
    assert "6.41" not in cinic_row and "--" in cinic_row


def test_underscores_and_other_specials_are_escaped(study: SimpleNamespace) -> None:
    for name in ("summary.tex", "per_seed.tex"):
        tex = (study.root / "tables" / name).read_text()
        assert "uniform\\_p05" in tex and "uniform_p05" not in tex
        code = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
        outside_math = re.sub(r"\$[^$]*\$", "", code)
        assert re.search(r"(?<!\\)_", outside_math) is None, name
    assert report.latex_escape("a_b&c%d$e#f{g}h~i^j\\k") == (
        "a\\_b\\&c\\%d\\$e\\#f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j"
        "\\textbackslash{}k")


def test_pretty_names() -> None:
    assert report.dataset_name("cifar10") == "CIFAR-10"
    assert report.dataset_name("cinic10") == "CINIC-10"
    assert report.network_name(110, "cifar") == "ResNet-110"
    assert report.network_name(50, "bottleneck") == "ResNet-50"
    assert report.network_name(50, "cifar") == "ResNet-50 (basic blocks)"
    assert report.network_name(101, "bottleneck") == "ResNet-101"
    assert report.latex_escape("a<b|c>") == "a\\textless{}b\\textbar{}c\\textgreater{}"


def test_paper_values_match_by_rule_and_p_last_not_by_name() -> None:
    assert report.paper_test_error("cifar10", 110, "none", 1.0) == 6.41
    assert report.paper_test_error("cifar10", 110, "linear", 0.5) == 5.25
    assert report.paper_test_error("cifar10", 1202, "none", 0.5) == 6.67
    assert report.paper_test_error("cifar10", 1202, "linear", 0.5) == 4.91
    assert report.paper_test_error("cifar10", 110, "linear", 0.8) is None
    assert report.paper_test_error("cifar10", 110, "uniform", 0.5) is None
    assert report.paper_test_error("cinic10", 110, "linear", 0.5) is None


def test_per_seed_tables_list_every_run(study: SimpleNamespace) -> None:
    tex = (study.root / "tables" / "per_seed.tex").read_text()
    assert "\\label{tab:sdnet-per-seed}" in tex and "\\bottomrule" in tex
    for errors in ERRORS.values():
        for error in errors:
            assert f"& {error:.2f} &" in tex
    md = (study.root / "tables" / "per_seed.md").read_text()
    assert len(markdown_table(md)) == 1 + 11


def markdown_table(text: str) -> list[list[str]]:
    """Rows of the one github-style table in `text`, checked for a consistent column count."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert len(rows) >= 3 and all(set(c) <= set("-:") for c in rows[1])
    assert len({len(r) for r in rows}) == 1, "ragged Markdown table"
    return [rows[0]] + rows[2:]


def test_summary_markdown_holds_the_same_numbers(study: SimpleNamespace) -> None:
    md = (study.root / "tables" / "summary.md").read_text()
    header, *rows = markdown_table(md)
    assert header[:2] == ["Data set", "Network"] and header[-1] == "Time ratio"
    assert len(rows) == 2
    cifar = dict(zip(header, rows[0]))
    assert cifar["baseline: error"] == "6.50 ± 0.20 (3)"
    assert cifar["stochastic: error"] == "**5.30 ± 0.10** (3)"
    assert cifar["baseline: paper"] == "6.41" and cifar["stochastic: paper"] == "5.25"
    assert cifar["uniform_p05: error (n = 1)"] == "5.90"
    assert cifar["Time ratio"] == "0.80"
    assert "nan" not in md.lower()


def test_tex_compiles_with_pdflatex(study: SimpleNamespace, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing (run `make system-deps`)")
        pytest.skip("pdflatex not installed")
    for name in ("summary.tex", "per_seed.tex"):
        shutil.copy(study.root / "tables" / name, tmp_path / name)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{summary.tex}\n\\input{per_seed.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_one_seed_and_no_validation_split_show_no_nan(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant="baseline", val=False, epoch_seconds=1.0),
               make_run(tmp_path / "runs", variant="stochastic", val=False,
                        test_error_at_best=5.0, epoch_seconds=1.0)]
    report.aggregate(folders, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    runs = read_csv(tmp_path / "runs.csv")
    assert runs.best_val_error.isna().all() and (runs.best_epoch == 4).all()
    report.render_tables(tmp_path / "runs.csv", tmp_path / "tables")
    for name in report.TABLES:
        assert "nan" not in (tmp_path / "tables" / name).read_text().lower(), name
    tex = (tmp_path / "tables" / "summary.tex").read_text()
    assert "$\\mathbf{5.00}$" in tex and "(n = 1)" in tex
    assert "& $<0.01$ &" in tex  # a "<" outside math mode prints as "¡" in LaTeX
    assert "| <0.01 " in (tmp_path / "tables" / "summary.md").read_text()


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------

def test_figures_written_as_pdf_and_png(study: SimpleNamespace) -> None:
    for path in report.figure_paths(study.root / "figures"):
        data = path.read_bytes()
        assert len(data) > 5000, path
        assert data.startswith(b"%PDF" if path.suffix == ".pdf" else b"\x89PNG"), path
        assert b"CreationDate" not in data and b"Matplotlib" not in data
    for path in [study.runs_csv, study.epochs_csv, *study.tables.values()]:
        assert path.stat().st_mode & 0o444 == 0o444, path  # readable by all, like any output


def test_figures_have_labelled_axes_and_legends_off_the_data(study: SimpleNamespace) -> None:
    figs = study.figures
    assert set(figs) == set(report.FIGURES)
    curves = figs["test_error_curves"].axes
    assert len(curves) == 2  # CIFAR-10 ResNet-110, CINIC-10 ResNet-20
    assert [ax.get_title() for ax in curves] == ["CIFAR-10, ResNet-110", "CINIC-10, ResNet-20"]
    for ax in curves:
        assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Test error (%)"
        assert ax.get_yscale() == "log"
        assert len(ax.get_lines()) == 3 if "110" in ax.get_title() else 2
    for ax in figs["final_error"].axes:
        assert ax.get_ylabel() == "Test error at best val. epoch (%)"
        assert ax.get_xlabel() == "Variant"
    cifar_time = figs["epoch_time"].axes[0]
    assert cifar_time.get_ylabel() == "Training time per epoch (s)"
    assert [t.get_text() for t in cifar_time.texts] == ["1.00×", "0.80×", "0.67×"]
    for fig in figs.values():
        assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)


def test_linear_error_axis_on_request(study: SimpleNamespace) -> None:
    runs, epochs = report.read_runs(study.runs_csv), report.read_epochs(study.epochs_csv)
    fig = report.plot_test_error_curves(runs, epochs, log_scale=False)
    assert {ax.get_yscale() for ax in fig.axes} == {"linear"}


def test_same_inputs_give_the_same_bytes(study: SimpleNamespace, tmp_path: Path) -> None:
    """Re-render in a fresh process with another hash seed: every output byte-identical."""
    code = ("import sys; from sdnet import report; "
            "report.render_tables(sys.argv[1], sys.argv[3]); "
            "report.plot_figures(sys.argv[1], sys.argv[2], sys.argv[4])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(study.runs_csv), str(study.epochs_csv),
                    str(tmp_path / "tables"), str(tmp_path / "figures")], env=env, check=True,
                   timeout=120)
    for name in report.TABLES:
        assert (tmp_path / "tables" / name).read_bytes() == \
            (study.root / "tables" / name).read_bytes(), name
    for path in report.figure_paths(tmp_path / "figures"):
        assert path.read_bytes() == (study.root / "figures" / path.name).read_bytes(), path.name
    assert not [p for p in tmp_path.rglob("*.tmp")]  # atomic writes leave no temp files


# --------------------------------------------------------------------------------------------
# workflow/scripts, run the way Snakemake runs them (a `snakemake` object in the globals)
# --------------------------------------------------------------------------------------------

class Named(list):
    """A list with attributes, like Snakemake's input/output/log objects."""

    def __init__(self, items=(), **named) -> None:
        super().__init__([*items, *named.values()])
        self.__dict__.update(named)


def run_script(name: str, **parts) -> None:
    job = SimpleNamespace(input=Named(), output=Named(), params=Named(), log=Named())
    job.__dict__.update(parts)
    script = REPO / "workflow" / "scripts" / f"{name}.py"
    runpy.run_path(str(script), init_globals={"snakemake": job}, run_name="__main__")


def test_aggregate_script_the_snakemake_way(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v) for v in ("baseline", "stochastic")]
    out = Named(runs=str(tmp_path / "m" / "runs.csv"), epochs=str(tmp_path / "m" / "epochs.csv"))
    log = tmp_path / "logs" / "aggregate.log"
    log.parent.mkdir()
    run_script("aggregate", input=Named(summaries=[str(f / "summary.json") for f in folders]),
               output=out, log=Named([str(log)]))
    assert len(read_csv(tmp_path / "m" / "runs.csv")) == 2
    assert "aggregated 2 run(s)" in log.read_text()
    _drop_metrics(folders[1])
    with pytest.raises(SystemExit) as exit_:
        run_script("aggregate", input=Named(summaries=[str(f / "summary.json") for f in folders]),
                   output=out, log=Named([str(log)]))
    assert exit_.value.code == 1
    assert str(folders[1]) in log.read_text() and "no metrics.csv" in log.read_text()


def test_tables_script_checks_its_declared_outputs(study: SimpleNamespace, tmp_path: Path) -> None:
    log = tmp_path / "tables.log"
    outputs = [str(tmp_path / "t" / n) for n in report.TABLES]
    run_script("tables", input=Named(runs=str(study.runs_csv)), output=Named(outputs),
               log=Named([str(log)]))
    assert all(Path(p).stat().st_size for p in outputs)
    with pytest.raises(SystemExit):
        run_script("tables", input=Named(runs=str(study.runs_csv)),
                   output=Named([str(tmp_path / "t" / "results.tex")]), log=Named([str(log)]))
    assert "results.tex is not one of the files" in log.read_text()


def test_figures_script_rejects_a_bad_log_scale(study: SimpleNamespace, tmp_path: Path) -> None:
    log = tmp_path / "figures.log"
    with pytest.raises(SystemExit):
        run_script("figures", input=Named(runs=str(study.runs_csv), epochs=str(study.epochs_csv)),
                   output=Named([str(p) for p in report.figure_paths(tmp_path / "f")]),
                   params=Named(log_scale="sometimes"), log=Named([str(log)]))
    assert "params.log_scale must be true or false" in log.read_text()
