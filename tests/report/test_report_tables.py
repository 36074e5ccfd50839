"""sdnet.report.tables and styles: summary (wide and long), per-seed, LaTeX and Markdown; the
paper's numbers, the differences with intervals and markers, and pdflatex without overfull boxes."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from report_runs import (
    ERRORS,
    aggregated_study,
    compile_latex,
    make_run,
    markdown_table,
    runs_row,
    sweep_rows,
    write_runs_csv,
)

from sdnet import networks, report
from sdnet.errors import SdnetError
from sdnet.report import names, stats


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The hand-made runs of report_runs.ERRORS, aggregated and rendered once for the module."""
    study = aggregated_study(tmp_path_factory.mktemp("study"))
    comparisons = study.root / "metrics" / "comparisons.csv"
    report.write_comparisons(study.runs_csv, comparisons)
    study.tables = report.render_tables(study.runs_csv, study.root / "tables", comparisons)
    return study


def text(study: SimpleNamespace, name: str) -> str:
    return (study.root / "tables" / name).read_text()


def body_of(tex: str) -> str:
    return tex[tex.index("\\midrule"):]


def test_summary_tex_means_stds_bold_paper_and_ratio(study: SimpleNamespace) -> None:
    tex = text(study, "summary.tex")
    assert tex.startswith("%") and "booktabs" in tex.splitlines()[1]
    for command in ("\\toprule", "\\midrule", "\\bottomrule", "\\label{tab:sdnet-summary}",
                    "\\caption{", "\\begin{table}", "\\end{table}"):
        assert command in tex, command
    body = body_of(tex)
    # three variants in the CIFAR-10 row: the long layout, n per cell (3, 3, 1; 2 on CINIC-10)
    assert "$6.50 \\pm 0.20$ (3)" in body
    assert "$\\mathbf{5.30 \\pm 0.10}$ (3)" in body  # best of the CIFAR-10 row
    assert "$\\mathbf{13.00 \\pm 1.41}$ (2)" in body  # best of the CINIC-10 row
    assert "$13.25 \\pm 0.35$ (2)" in body and "$5.90$ (1)" in body
    assert body.count("\\mathbf") == 2
    assert "nan" not in tex.lower()
    assert "\\emph{CIFAR-10, ResNet-110}" in body and "\\emph{CINIC-10, ResNet-20}" in body
    cifar = body[:body.index("CINIC-10")]
    lines = {line.split(" & ")[0]: line for line in cifar.splitlines() if " & " in line}
    assert "& 6.41 &" in lines["baseline"] and "& 5.25 &" in lines["stochastic"]
    assert lines["uniform\\_p05"].startswith("uniform\\_p05 & uniform, 0.5 &")


def test_summary_shows_differences_with_intervals_and_holm_markers(study: SimpleNamespace) -> None:
    frame = report.read_comparisons(study.root / "metrics" / "comparisons.csv")
    stoch = frame[(frame.dataset == "cifar10") & (frame.variant == "stochastic")].iloc[0]
    assert stoch.p_holm < 0.05
    expected = f"$-1.20\\;[{stoch.ci_low:.2f}, {stoch.ci_high:.2f}]$$^{{*}}$"
    tex = text(study, "summary.tex")
    assert expected in tex
    assert "$-0.60$ &" in tex  # one seed of uniform_p05: the difference, no interval, no mark
    cinic = frame[frame.dataset == "cinic10"].iloc[0]
    assert cinic.p_holm > 0.05
    assert f"$+0.25\\;[{cinic.ci_low:.2f}, {cinic.ci_high:.2f}]$ &" in tex  # not marked
    caption = tex[tex.index("\\caption{"):tex.index("\\label")]
    for words in ("Welch's two-sided t-test", "95\\% confidence interval", "Holm's correction",
                  "over the 2 tested comparisons", "1 to 3 seeds", "$p < 0.05$", "$^{*}$"):
        assert words in caption, words


def test_underscores_and_other_specials_are_escaped(study: SimpleNamespace) -> None:
    for name in ("summary.tex", "per_seed.tex"):
        tex = text(study, name)
        assert "uniform\\_p05" in tex and "uniform_p05" not in tex
        code = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
        outside_math = re.sub(r"\$[^$]*\$", "", code)
        assert re.search(r"(?<!\\)_", outside_math) is None, name
        assert "<" not in outside_math and ">" not in outside_math, name
    assert report.latex_escape("a_b&c%d$e#f{g}h~i^j\\k") == (
        "a\\_b\\&c\\%d\\$e\\#f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j"
        "\\textbackslash{}k")
    assert report.latex_escape("a<b|c>") == "a\\textless{}b\\textbar{}c\\textgreater{}"


def test_pretty_names() -> None:
    assert report.dataset_name("cifar10") == "CIFAR-10"
    assert report.dataset_name("cifar100") == "CIFAR-100"
    assert report.dataset_name("svhn") == "SVHN"
    assert report.dataset_name("mnist") == "mnist"
    assert report.network_name(110, "cifar") == "ResNet-110"
    assert report.network_name(50, "bottleneck") == "ResNet-50"
    assert report.network_name(50, "cifar") == "CIFAR ResNet-50"
    assert report.network_name(152, "bottleneck") == "Bottleneck ResNet-152"
    assert report.network_name(110, "preact") == "Pre-act ResNet-110"
    assert report.network_name(164, "preact-bottleneck") == "Pre-act bottleneck ResNet-164"
    assert names.network_title("preact-bottleneck-resnet164") == "Pre-act bottleneck ResNet-164"
    assert names.network_title("resnet50") == "ResNet-50"
    # every registered family at a depth it has gets a name of its own
    titles = {names.network_name(d, f) for f in networks.families()
              for d in networks.family(f).examples}
    assert len(titles) == sum(len(networks.family(f).examples) for f in networks.families())


def test_per_seed_tables_list_every_run(study: SimpleNamespace) -> None:
    tex = text(study, "per_seed.tex")
    assert "\\label{tab:sdnet-per-seed}" in tex and "\\bottomrule" in tex
    for errors in ERRORS.values():
        for error in errors:
            assert f"& {error:.2f} &" in tex
    assert "uniform\\_p05: uniform, $p_L = 0.5$" in tex  # the variant by its rule and p_L
    assert len(markdown_table(text(study, "per_seed.md"))) == 1 + 11


def test_summary_markdown_holds_the_same_numbers(study: SimpleNamespace) -> None:
    header, *rows = markdown_table(text(study, "summary.md"))
    assert header == ["Data set", "Network", "Variant", "Rule, p_L", "Error", "Paper",
                      "Diff. [95% CI]", "Hours", "Time"]
    cells = {(r[0], r[2]): dict(zip(header, r)) for r in rows}
    assert len(rows) == 5
    stoch = cells[("CIFAR-10", "stochastic")]
    assert stoch["Error"] == "**5.30 ± 0.10** (3)" and stoch["Paper"] == "5.25"
    assert re.fullmatch(r"-1\.20 \[-\d\.\d\d, -\d\.\d\d\]\*", stoch["Diff. [95% CI]"])
    assert stoch["Rule, p_L"] == "linear, 0.5" and stoch["Time"] == "0.80"
    assert cells[("CIFAR-10", "baseline")]["Diff. [95% CI]"] == "--"
    assert cells[("CIFAR-10", "uniform_p05")]["Diff. [95% CI]"] == "-0.60"
    assert cells[("CINIC-10", "baseline")]["Paper"] == "--"
    assert "nan" not in text(study, "summary.md").lower()


def _wide_rows(seeds: int = 3) -> list[dict]:
    rows = [runs_row(seed=s, error=e) for s, e in enumerate([6.5, 6.3, 6.7][:seeds])]
    rows += [runs_row(variant="stochastic", seed=s, error=e, survival="linear", p_last=0.5,
                      seconds=6000.0) for s, e in enumerate([5.2, 5.4, 5.3][:seeds])]
    rows += [runs_row("cifar100", variant=v, seed=s, error=e + 20 * (v == "baseline"),
                      survival=r, p_last=p) for v, r, p in (("baseline", "none", 1.0),
                                                            ("stochastic", "linear", 0.5))
             for s, e in enumerate([25.0, 25.2, 24.8][:seeds])]
    return rows


def test_two_variants_wide_layout(tmp_path: Path) -> None:
    report.render_tables(write_runs_csv(tmp_path / "runs.csv", _wide_rows()), tmp_path)
    tex = (tmp_path / "summary.tex").read_text()
    assert "\\multicolumn{3}{c}{baseline} & \\multicolumn{4}{c}{stochastic}" in tex
    assert "(n = 3)" in tex and "\\emph{CIFAR-100}" in tex
    cifar = next(line for line in tex.splitlines() if line.startswith("ResNet-110") and "6.41" in
                 line)
    assert "\\begin{tabular}[t]{@{}c@{}}$-1.20$$^{*}$ \\\\ $[" in cifar
    assert cifar.rstrip(" \\").endswith("0.80")  # 6000 s / 7500 s
    # the paper's CIFAR-100 constant depth: 27.22 (text) with the note on Table 1's 27.76
    assert "27.22$^{\\dagger}$" in tex and "27.76" in tex[:tex.index("\\label")]
    header, *rows = markdown_table((tmp_path / "summary.md").read_text())
    assert header[:2] == ["Data set", "Network"] and header[-1] == "Time ratio"
    assert "stochastic: diff. [95% CI]" in header
    cells = dict(zip(header, rows[0]))
    assert cells["baseline: error (n = 3)"] == "6.50 ± 0.20"
    assert re.fullmatch(r"-1\.20 \[-\d\.\d\d, -\d\.\d\d\]\*", cells["stochastic: diff. [95% CI]"])
    assert dict(zip(header, rows[1]))["baseline: paper"] == "27.22†"


def test_one_seed_gives_the_difference_only(tmp_path: Path) -> None:
    report.render_tables(write_runs_csv(tmp_path / "runs.csv", _wide_rows(seeds=1)), tmp_path)
    tex = (tmp_path / "summary.tex").read_text()
    assert "& $-1.30$ &" in tex and "& $-20.00$ &" in tex  # 5.20 - 6.50, 25.00 - 45.00
    assert "$[" not in body_of(tex) and "^{*}" not in body_of(tex)
    assert "nan" not in tex.lower()


def test_zero_variance_gives_a_difference_and_no_marker(tmp_path: Path) -> None:
    rows = [runs_row(variant=v, seed=s, error=5.0, survival=r, p_last=p)
            for v, r, p in (("baseline", "none", 1.0), ("stochastic", "linear", 0.5))
            for s in range(3)]
    report.render_tables(write_runs_csv(tmp_path / "runs.csv", rows), tmp_path)
    tex, md = (tmp_path / "summary.tex").read_text(), (tmp_path / "summary.md").read_text()
    assert "& $0.00$ &" in tex and "^{*}" not in body_of(tex)
    assert "| 0.00 " in md and "nan" not in (tex + md).lower()


@pytest.mark.parametrize("variants", [2, 3, 4, 10])
def test_every_table_compiles_without_an_overfull_hbox(tmp_path: Path, variants: int) -> None:
    """A plain one-column article with booktabs and amsmath: no table wider than the text.

    Two rows (CIFAR-10 and CIFAR-100 ResNet-110) of `variants` variants: constant depth and a
    p_L sweep named as the workflow names sweeps, three seeds each.
    """
    rows = sweep_rows(variants) + [dict(r, dataset="cifar100",
                                        test_error_at_best=r["test_error_at_best"] + 20)
                                   for r in sweep_rows(variants)]
    paths = report.render_tables(write_runs_csv(tmp_path / "runs.csv", rows), tmp_path / "t")
    tex = paths["summary.tex"].read_text()
    assert ("\\multicolumn{3}{c}{baseline}" in tex) == (variants <= 2)  # wide, else long
    log = compile_latex([paths["summary.tex"], paths["per_seed.tex"]], tmp_path / "latex")
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "LaTeX Warning" not in log or "Label(s) may have changed" in log


def test_long_layout_one_line_per_variant_grouped(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(4) + sweep_rows(4, depth=56))
    report.render_tables(runs_csv, tmp_path)
    tex = (tmp_path / "summary.tex").read_text()
    body = body_of(tex)
    assert body.count("\\emph{CIFAR-10, ResNet-56}") == 1
    assert body.count("\\emph{CIFAR-10, ResNet-110}") == 1
    assert body.index("ResNet-56}") < body.index("ResNet-110}")  # shallow first
    variant_lines = [line for line in body.splitlines() if line.startswith("linear-p")]
    assert len(variant_lines) == 2 * 3
    assert variant_lines[0].startswith("linear-p\\_last0.9 & linear, 0.9 &")
    assert "(n = 3)" in tex and "Rule, $p_L$" in tex and "none = constant depth" in tex
    header, *rows = markdown_table((tmp_path / "summary.md").read_text())
    assert len(rows) == 8 and header[:4] == ["Data set", "Network", "Variant", "Rule, p_L"]
    assert [r[2] for r in rows[:4]] == ["baseline", "linear-p_last0.9", "linear-p_last0.8",
                                        "linear-p_last0.7"]


def test_no_augmentation_is_its_own_row_with_its_paper_numbers(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", variant=v, seed=s, augment=a,
                        dataset="cifar10" if a else "cifar100")
               for v in ("baseline", "stochastic") for s in range(2) for a in (True, False)]
    report.aggregate(folders, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    report.render_tables(tmp_path / "runs.csv", tmp_path / "t")
    tex = (tmp_path / "t" / "summary.tex").read_text()
    assert "ResNet-110, no augmentation" in tex  # CIFAR-100 without its default augmentation
    assert "44.74" in tex and "37.80" in tex and "6.41" in tex and "5.25" in tex
    assert "27.22" not in tex


def test_no_constant_depth_variant_no_difference_column(tmp_path: Path) -> None:
    rows = [runs_row(variant=f"linear-p_last{p}", seed=s, survival="linear", p_last=p)
            for p in (0.2, 0.5) for s in range(2)]
    report.render_tables(write_runs_csv(tmp_path / "runs.csv", rows), tmp_path)
    tex = (tmp_path / "summary.tex").read_text()
    assert "Diff." not in tex and "Welch" not in tex and "5.25" in tex


def test_tables_read_the_given_comparisons(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", _wide_rows())
    comparisons = tmp_path / "comparisons.csv"
    frame = report.write_comparisons(runs_csv, comparisons)
    frame.loc[0, ["diff", "ci_low", "ci_high"]] = [-9.99, -10.5, -9.5]
    frame.to_csv(comparisons, index=False)
    report.render_tables(runs_csv, tmp_path / "t", comparisons)
    assert "$-9.99$$^{*}$ \\\\ $[-10.50, -9.50]$" in (tmp_path / "t" / "summary.tex").read_text()
    (tmp_path / "bad.csv").write_text("dataset,variant\ncifar10,x\n")
    with pytest.raises(SdnetError, match="expected dataset, network, depth, variant"):
        report.render_tables(runs_csv, tmp_path / "u", tmp_path / "bad.csv")
    assert not (tmp_path / "u").exists()
    assert stats.COMPARISON_COLUMNS[0] == "dataset"


def heatmap_grid_rows(seeds: int = 2) -> list[dict]:
    """runs.csv rows of config/paper/fig8-heatmap.yaml: 5 depths x (constant depth + linear
    decay at p_L = 0.1 ... 1.0) x `seeds` seeds (110 runs for 2)."""
    rows = []
    for depth in (20, 32, 44, 56, 110):
        rows += [runs_row(depth=depth, variant="baseline", seed=s, error=7.0 + s / 10)
                 for s in range(seeds)]
        for k in range(1, 11):
            p_last = k / 10
            rows += [runs_row(depth=depth, variant=f"linear-p_last{p_last:g}", seed=s,
                              error=6.0 + abs(p_last - 0.5) + s / 10, survival="linear",
                              p_last=p_last) for s in range(seeds)]
    return rows


def test_a_hundred_run_grid_fits_the_page(tmp_path: Path) -> None:
    """The heat map's grid (110 runs): per_seed.tex and the long summary.tex are split into
    several floats, each within the page: no overfull box, no float too large."""
    rows = heatmap_grid_rows()
    assert len(rows) == 110
    paths = report.render_tables(write_runs_csv(tmp_path / "runs.csv", rows), tmp_path / "t")
    per_seed = paths["per_seed.tex"].read_text()
    parts = per_seed.count("\\begin{table}")
    assert parts >= 3 and per_seed.count("\\end{table}") == parts
    assert f"Every run (continued, part {parts} of {parts})." in per_seed
    assert "\\label{tab:sdnet-per-seed}" in per_seed and "\\label{tab:sdnet-per-seed-2}" in per_seed
    # every run once, in order, across the parts; a group cut by a part boundary is continued
    run_lines = [line for line in per_seed.splitlines() if re.match(r"^[a-z].* & \d+ & ", line)
                 or re.match(r"^ & \d+ & ", line)]
    assert len(run_lines) == 110
    assert "(continued)}" in per_seed
    for part in per_seed.split("\\midrule")[1:]:  # each part's first run names its variant
        first = next(line for line in part.splitlines() if " & " in line and "multicolumn"
                     not in line)
        assert not first.startswith(" & "), first
    summary = paths["summary.tex"].read_text()
    assert summary.count("\\begin{table}") >= 2
    log = compile_latex([paths["per_seed.tex"], paths["summary.tex"]], tmp_path / "latex")
    assert "Overfull \\hbox" not in log and "Overfull \\vbox" not in log, re.findall(
        r"Overfull \\[hv]box.*", log)
    assert "Float too large" not in log, re.findall(r"Float too large.*", log)
    assert "LaTeX Warning" not in log or "Label(s) may have changed" in log


def test_networks_of_one_depth_are_rows_of_their_own(tmp_path: Path) -> None:
    """CIFAR-10 at depth 110 in two families and at depth 50 in two: four rows, each named; the
    paper's numbers only beside the ResNet-110 the paper trained (not the pre-act one)."""
    rows = []
    for depth, arch, error in ((110, None, 6.0), (110, "preact", 5.5), (50, None, 7.0),
                               (50, "cifar", 8.0)):
        rows += [runs_row(depth=depth, arch=arch, seed=s, error=error + 0.1 * s)
                 for s in range(2)]
        rows += [runs_row(depth=depth, arch=arch, variant="stochastic", seed=s,
                          error=error - 1 + 0.1 * s, survival="linear", p_last=0.5)
                 for s in range(2)]
    runs_csv = write_runs_csv(tmp_path / "runs.csv", rows)
    frame = report.write_comparisons(runs_csv, tmp_path / "comparisons.csv")
    assert frame.network.tolist() == ["resnet50", "cifar-resnet50", "resnet110",
                                      "preact-resnet110"]
    report.render_tables(runs_csv, tmp_path, tmp_path / "comparisons.csv")
    header, *body = markdown_table((tmp_path / "summary.md").read_text())
    lines = {cells[1]: dict(zip(header, cells)) for cells in body}
    assert list(lines) == ["ResNet-50", "CIFAR ResNet-50", "ResNet-110", "Pre-act ResNet-110"]
    assert lines["ResNet-110"]["baseline: paper"] == "6.41"
    assert lines["Pre-act ResNet-110"]["baseline: paper"] == "--"
    assert lines["Pre-act ResNet-110"]["baseline: error (n = 2)"] == "5.55 ± 0.07"
    assert lines["CIFAR ResNet-50"]["stochastic: diff. [95% CI]"].startswith("-1.00")


def test_comparisons_from_before_network_names_still_render(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", _wide_rows())
    frame = report.write_comparisons(runs_csv, tmp_path / "comparisons.csv")
    frame.drop(columns="network").to_csv(tmp_path / "old.csv", index=False)
    old = report.read_comparisons(tmp_path / "old.csv")
    assert old.network.tolist() == frame.network.tolist()
    report.render_tables(runs_csv, tmp_path / "t", tmp_path / "old.csv")
    assert (tmp_path / "t" / "summary.md").read_text() == \
        report.render_tables(runs_csv, tmp_path / "u", tmp_path / "comparisons.csv")[
            "summary.md"].read_text()
