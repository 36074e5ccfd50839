"""runs.csv -> the tables people put in a paper: summary and per-seed, LaTeX and Markdown.

summary: per report row (data set, network, augmentation) and variant, the test error at the
best-validation epoch over seeds, the paper's number beside the matching variant, the difference
to constant depth with its Welch interval (marked when Holm-significant, see `stats`), hours.
With up to three variants in every row it is wide (a column group per variant); with more (a
sweep) it is long (a line per variant under a heading per data set and network), so it fits a
one-column page either way. per_seed: one line per run. A table taller than a page (a grid of
some 100 runs) is split into several floats (styles.latex_table).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sdnet.atomic import atomic_write_text
from sdnet.grid import targets
from sdnet.report import cost, names, paper, stats
from sdnet.report.aggregate import read_runs
from sdnet.report.styles import (
    Style,
    fmt_number,
    latex_blocks,
    latex_row,
    latex_table,
    markdown_table,
)

log = logging.getLogger(__name__)

TABLES = tuple(targets.table_files())  # summary, per_seed, cost; .tex and .md
# More variants in a row: the long layout. Measured with pdflatex in a one-column article: two
# variants with their intervals fill the text width; a third group overflows it by ~170 pt.
WIDE_MAX_VARIANTS = 2
SUMMARY_TITLE, PER_SEED_TITLE = "Test error of stochastic depth", "Every run"


# ---------------------------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------------------------

def summary_frame(runs: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per (row, variant): error over seeds, paper, difference to constant depth, hours."""
    if comparisons is None:
        comparisons = stats.comparisons(runs)
    compared = {(c.dataset, c.network, c.variant): c for c in comparisons.itertuples()}
    records = []
    for row in names.rows(runs):
        cells = names.in_row(runs, row)
        reference = stats.reference_variant(cells)
        base_hours = float(cells[cells.variant == reference].train_seconds.mean()) / 3600.0 \
            if reference else math.nan
        for variant in names.variant_order(cells):
            group = cells[cells.variant == variant]
            errors = group.test_error_at_best
            first = group.iloc[0]
            entry = paper.paper_result(row.dataset, row.depth, first.survival, first.p_last,
                                       row.augment, row.arch)
            test = compared.get((row.dataset, row.network, variant))
            hours = float(group.train_seconds.mean()) / 3600.0
            records.append({
                **row._asdict(), "variant": variant, "survival": first.survival,
                "p_last": float(first.p_last), "mean": float(errors.mean()),
                "std": float(errors.std(ddof=1)) if len(errors) > 1 else math.nan,
                "n": int(errors.count()), "hours": hours, "epochs": int(group.epochs.max()),
                "paper": entry.test_error if entry else None,
                "paper_note": entry.note if entry else "",
                "reference": reference,
                "time_ratio": hours / base_hours if base_hours > 0 else math.nan,
                "diff": test.diff if test else math.nan,
                "ci_low": test.ci_low if test else math.nan,
                "ci_high": test.ci_high if test else math.nan,
                "p_holm": test.p_holm if test else math.nan,
            })
    return pd.DataFrame(records)


def _pick(cells: pd.DataFrame, survival: str, name: str, p_last: float) -> pd.Series | None:
    """The row's variant with this rule and p_L, preferring the conventional name."""
    match = cells[cells.survival == survival]
    match = match[[math.isclose(p, p_last) for p in match.p_last]]
    if match.empty:
        return None
    named = match[match.variant == name]
    return (named if not named.empty else match).iloc[0]


def time_ratio(cells: pd.DataFrame) -> float | None:
    """Training time of the paper's stochastic depth over constant depth, for one table row."""
    reference = stats.reference_variant(cells)
    base = None if reference is None else cells[cells.variant == reference].iloc[0]
    stoch = _pick(cells, "linear", "stochastic", paper.PAPER_P_LAST)
    if base is None or stoch is None or base.hours <= 0:
        return None
    return float(stoch.hours / base.hours)


def _best_variants(cells: pd.DataFrame) -> set[str]:
    """Variants with the lowest mean error (as printed); none when the row has one variant."""
    if len(cells) < 2:
        return set()
    printed = cells["mean"].map(lambda mean: float(f"{mean:.2f}"))
    return set(cells.variant[printed == printed.min()])


def _rows_of(summary: pd.DataFrame) -> list[tuple[names.Row, pd.DataFrame]]:
    keys = summary[["dataset", "network", "augment"]].drop_duplicates()
    return [(names.Row(d, n, bool(a)),
             summary[(summary.dataset == d) & (summary.network == n) & (summary.augment == a)])
            for d, n, a in keys.itertuples(index=False)]


def is_long(summary: pd.DataFrame) -> bool:
    """Whether some row has more variants than the wide layout holds."""
    return bool(len(summary)) and int(summary.groupby(
        ["dataset", "network", "augment"]).variant.count().max()) > WIDE_MAX_VARIANTS


def _common_n(cells: pd.DataFrame) -> int | None:
    """The number of seeds when it is the same in every cell (then the header says it)."""
    counts = set(cells.n)
    return counts.pop() if len(counts) == 1 else None


def _error(style: Style, cell: pd.Series, n_in_header: bool, best: set[str]) -> str:
    return style.error(cell["mean"], cell["std"], None if n_in_header else int(cell.n),
                       cell.variant in best)


def _diff(style: Style, cell: pd.Series, stacked: bool = False) -> str:
    return style.diff(cell["diff"], cell.ci_low, cell.ci_high, stats.significant(cell.p_holm),
                      stacked)


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------

def _variants_text(runs: pd.DataFrame, order: list[str], style: Style) -> str:
    """'baseline: constant depth; stochastic: linear decay, p_L = 0.5' for the captions."""
    first = runs.drop_duplicates("variant").set_index("variant")
    parts = []
    for v in order:
        survival, p_last = first.loc[v, "survival"], float(first.loc[v, "p_last"])
        rule = style.text(names.rule_name(survival))
        desc = rule if survival == "none" else f"{rule}, {style.p_last(p_last)}"
        parts.append(f"{style.text(v)}: {desc}")
    return "; ".join(parts)


def _epochs_text(runs: pd.DataFrame) -> str:
    lo, hi = int(runs.epochs.min()), int(runs.epochs.max())
    if lo == hi:
        return f"{lo} epoch" if lo == 1 else f"{lo} epochs"
    return f"{lo} to {hi} epochs"


def _seeds_text(summary: pd.DataFrame) -> str:
    lo, hi = int(summary.n.min()), int(summary.n.max())
    return f"{lo} seed{'s' if lo > 1 else ''}" if lo == hi else f"{lo} to {hi} seeds"


def _stats_text(summary: pd.DataFrame, comparisons: pd.DataFrame, style: Style) -> str:
    if comparisons.empty:
        return ""
    tested = int(comparisons.p_value.notna().sum())
    return (f"Diff.: mean minus the row's constant-depth mean, in percentage points, with the "
            f"95{style.pct} confidence interval of Welch's two-sided t-test (unequal variances) "
            f"over {_seeds_text(summary)} per variant; {style.marker}: {style.less_than(stats.ALPHA)} "
            f"after Holm's correction over the {tested} tested comparison"
            f"{'s' if tested != 1 else ''} (comparisons.csv); a difference "
            f"without an interval has fewer than two seeds, or no spread, on a side. ")


def _paper_text(summary: pd.DataFrame, style: Style) -> str:
    if summary.paper.isna().all():
        return ""
    notes = sorted(set(summary[summary.paper.notna()].paper_note) - {""})
    noted = "".join(f" {style.dagger}{style.text(n)}." for n in notes)
    return (f"Paper: {paper.PAPER_CITATION}, matched by data set, network, rule, {style.p_symbol} and "
            f"augmentation.{noted} ")


def _summary_caption(runs: pd.DataFrame, summary: pd.DataFrame, comparisons: pd.DataFrame,
                     style: Style, long: bool) -> str:
    where_n = "n in the header, or in parentheses"
    text = (f"Test error ({style.pct}) at the epoch with the lowest validation error: mean "
            f"{style.pm} sample standard deviation over n seeds ({where_n}); the lowest mean "
            f"of each row in bold. {_paper_text(summary, style)}"
            f"{_stats_text(summary, comparisons, style)}Hours: mean training time per run. ")
    if long:
        rules = ", ".join(f"{r} = {names.rule_name(r)}" for r in sorted(
            set(summary.survival), key=names.rule_rank))
        text += (f"Rule, {style.p_symbol}: the survival rule ({style.text(rules)}) and the "
                 f"last block's survival probability. Time: training time relative to the "
                 f"constant-depth variant. ")
    else:
        paper_pl = style.p_last(paper.PAPER_P_LAST)
        text += f"Time ratio: training time of linear decay ({paper_pl}) over constant depth. "
    text += f"Runs trained for {_epochs_text(runs)}."
    if not long:
        text += f" Variants: {_variants_text(runs, names.variant_order(runs), style)}."
    return text


# ---------------------------------------------------------------------------------------------
# Wide summary: a column group per variant
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Group:
    """One variant's column group in the wide summary table."""

    variant: str
    paper: bool  # has a paper column (the paper reports this rule in some row)
    diff: bool  # compared with constant depth in some row
    n: int | None  # seeds per cell when the same in every row, else None (then n is per cell)

    def names(self, style: Style) -> list[str]:
        error = style.header("Error", *([] if self.n is None else [f"(n = {self.n})"]))
        return [error, *(["Paper"] if self.paper else []),
                *([style.header("Diff.", f"[95{style.pct} CI]")] if self.diff else []), "Hours"]


def _wide_layout(summary: pd.DataFrame, order: list[str]) -> list[_Group]:
    groups = []
    for variant in order:
        cells = summary[summary.variant == variant]
        if not cells.empty:
            groups.append(_Group(variant, bool(cells.paper.notna().any()),
                                 bool(cells["diff"].notna().any()), _common_n(cells)))
    return groups


def _wide_cells(summary: pd.DataFrame, runs: pd.DataFrame, style: Style,
                layout: list[_Group]) -> list[list[str]]:
    """Body rows: data set, network, the per-variant groups, the time ratio."""
    rows = []
    for row, cells in _rows_of(summary):
        best = _best_variants(cells)
        line = [style.text(names.dataset_name(row.dataset)),
                style.text(names.row_network(runs, row))]
        for group in layout:
            match = cells[cells.variant == group.variant]
            if match.empty:
                line += ["--"] * len(group.names(style))
                continue
            cell = match.iloc[0]
            line.append(_error(style, cell, group.n is not None, best))
            if group.paper:
                line.append(style.paper(cell.paper, bool(cell.paper_note)))
            if group.diff:
                line.append(_diff(style, cell, stacked=True))
            line.append(style.hours(cell.hours))
        line.append(fmt_number(time_ratio(cells)))
        rows.append(line)
    return rows


def _wide_latex(runs: pd.DataFrame, summary: pd.DataFrame, style: Style) -> tuple[str, list, list]:
    layout = _wide_layout(summary, names.variant_order(runs))
    top, rules, sub, col = [""], [], [], 2
    for group in layout:
        heads = group.names(style)
        top.append(f"\\multicolumn{{{len(heads)}}}{{c}}{{{style.text(group.variant)}}}")
        rules.append(f"\\cmidrule(lr){{{col}-{col + len(heads) - 1}}}")
        sub += heads
        col += len(heads)
    header = [latex_row([*top, ""]), "".join(rules),
              latex_row(["Network", *sub, style.header("Time", "ratio")])]
    body = latex_blocks(_wide_cells(summary, runs, style, layout), 1, col)
    return "l" + "c" * (col - 1), header, body


def _wide_markdown(runs: pd.DataFrame, summary: pd.DataFrame, style: Style) -> tuple[list, list]:
    layout = _wide_layout(summary, names.variant_order(runs))
    header = ["Data set", "Network"]
    for group in layout:
        header += [f"{style.text(group.variant)}: {name[0].lower()}{name[1:]}"
                   for name in group.names(style)]
    header.append("Time ratio")
    return header, _wide_cells(summary, runs, style, layout)


# ---------------------------------------------------------------------------------------------
# Long summary: a line per variant
# ---------------------------------------------------------------------------------------------

def _rule_cell(style: Style, cell: pd.Series) -> str:
    """The config's rule name (`survival`) and p_L: 'linear, 0.3'; 'none' for constant depth."""
    if cell.survival == "none":
        return "none"
    return f"{style.text(cell.survival)}, {float(cell.p_last):g}"


def _long_columns(summary: pd.DataFrame, style: Style) -> list[str]:
    n = _common_n(summary)
    error = style.header("Error", *([] if n is None else [f"(n = {n})"]))
    columns = ["Variant", style.header("Rule,", style.p_symbol), error]
    if summary.paper.notna().any():
        columns.append("Paper")
    if summary["diff"].notna().any():
        columns.append(style.header("Diff.", f"[95{style.pct} CI]"))
    return [*columns, "Hours", "Time"]


def _long_cells(summary: pd.DataFrame, runs: pd.DataFrame, style: Style) -> list[list[str]]:
    """Body rows: data set, network, then one line per variant."""
    with_paper, with_diff = summary.paper.notna().any(), summary["diff"].notna().any()
    n_in_header = _common_n(summary) is not None
    rows = []
    for row, cells in _rows_of(summary):
        best = _best_variants(cells)
        for cell in (c for _, c in cells.iterrows()):
            line = [style.text(names.dataset_name(row.dataset)),
                    style.text(names.row_network(runs, row)), style.text(cell.variant),
                    _rule_cell(style, cell), _error(style, cell, n_in_header, best)]
            if with_paper:
                line.append(style.paper(cell.paper, bool(cell.paper_note)))
            if with_diff:
                line.append(_diff(style, cell))
            line += [style.hours(cell.hours), fmt_number(cell.time_ratio)]
            rows.append(line)
    return rows


# ---------------------------------------------------------------------------------------------
# The documents
# ---------------------------------------------------------------------------------------------

def _summary_parts(runs: pd.DataFrame, comparisons: pd.DataFrame | None,
                   style: Style) -> tuple[pd.DataFrame, bool, str]:
    """The summary frame, whether it is long, and its caption."""
    comparisons = stats.comparisons(runs) if comparisons is None else comparisons
    summary = summary_frame(runs, comparisons)
    long = is_long(summary)
    return summary, long, _summary_caption(runs, summary, comparisons, style, long)


def summary_latex(runs: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> str:
    """summary.tex: wide (a column group per variant) or long (a line per variant)."""
    style = Style(latex=True)
    summary, long, caption = _summary_parts(runs, comparisons, style)
    if long:
        columns = _long_columns(summary, style)
        colspec = "ll" + "c" * (len(columns) - 2)
        header = [latex_row(columns)]
        body = latex_blocks(_long_cells(summary, runs, style), 2, len(columns))
    else:
        colspec, header, body = _wide_latex(runs, summary, style)
    return latex_table("sdnet summary table", caption, "tab:sdnet-summary", colspec, header,
                       body, title=SUMMARY_TITLE)


def summary_markdown(runs: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> str:
    """summary.md: the same table as summary.tex (every cell filled: easy to parse)."""
    style = Style(latex=False)
    summary, long, caption = _summary_parts(runs, comparisons, style)
    if long:
        header = ["Data set", "Network", *_long_columns(summary, style)]
        body = _long_cells(summary, runs, style)
    else:
        header, body = _wide_markdown(runs, summary, style)
    return markdown_table(SUMMARY_TITLE, caption, header, body)


def _has_top5(runs: pd.DataFrame) -> bool:
    """Whether some run recorded top-5 error (runs of sdnet before it did not)."""
    return TOP5 in runs.columns and bool(runs[TOP5].notna().any())


def _per_seed_caption(runs: pd.DataFrame, style: Style) -> str:
    top5 = (f" Top-5: top-5 test error ({style.pct}) at the last epoch (ImageNet's second "
            "figure)." if _has_top5(runs) else "")
    return (f"Every run: validation and test error ({style.pct}) at the epoch with the lowest "
            f"validation error (best epoch), test error at the last epoch, training hours, "
            f"seconds per epoch and the share of residual branches computed in training "
            f"({style.pct}).{top5} Variants: "
            f"{_variants_text(runs, names.variant_order(runs), style)}.")


def _per_seed_rows(runs: pd.DataFrame, style: Style) -> list[list[str]]:
    order = {v: i for i, v in enumerate(names.variant_order(runs))}
    rows = {r: i for i, r in enumerate(names.rows(runs))}
    ranked = sorted(runs.itertuples(index=False),
                    key=lambda r: (rows[names.Row(r.dataset, r.network, bool(r.augment))],
                                   order[r.variant], r.seed))
    top5 = _has_top5(runs)

    def top5_cell(r: Any) -> list[str]:
        if not top5:
            return []
        value = float(getattr(r, TOP5))
        return ["-" if math.isnan(value) else fmt_number(value)]

    return [[style.text(names.dataset_name(r.dataset)),
             style.text(names.row_network(runs, names.Row(r.dataset, r.network,
                                                          bool(r.augment)))),
             style.text(r.variant), str(int(r.seed)), str(int(r.epochs)), str(int(r.best_epoch)),
             fmt_number(float(r.best_val_error)), fmt_number(float(r.test_error_at_best)),
             fmt_number(float(r.final_test_error)), style.hours(r.train_seconds / 3600.0),
             fmt_number(float(r.mean_epoch_seconds), 1),
             fmt_number(100.0 * float(r.mean_blocks_computed), 1), *top5_cell(r)]
            for r in ranked]


PER_SEED_HEADER = (("Data set",), ("Network",), ("Variant",), ("Seed",), ("Epochs",),
                   ("Best", "epoch"), ("Val.", "error"), ("Test", "error"), ("Final test", "error"),
                   ("Hours",), ("s per", "epoch"), ("Blocks", "run"))
TOP5 = "final_test_error_top5"  # runs.csv (summary.json); a column only where some run has it


def _per_seed_header(runs: pd.DataFrame) -> tuple[tuple[str, ...], ...]:
    return PER_SEED_HEADER + ((("Top-5", "error"),) if _has_top5(runs) else ())


def per_seed_latex(runs: pd.DataFrame) -> str:
    """per_seed.tex: one row per run under a heading row per data set and network."""
    style = Style(latex=True)
    columns = len(_per_seed_header(runs)) - 2
    header = [latex_row([style.header(*lines) for lines in _per_seed_header(runs)[2:]])]
    body = latex_blocks(_per_seed_rows(runs, style), 2, columns, blank_repeats=1)
    return latex_table("sdnet per-seed table", _per_seed_caption(runs, style),
                       "tab:sdnet-per-seed", "l" + "r" * (columns - 1), header, body,
                       title=PER_SEED_TITLE)


def per_seed_markdown(runs: pd.DataFrame) -> str:
    """per_seed.md: the same table as per_seed.tex (every cell filled: easy to parse)."""
    style = Style(latex=False)
    header = [style.header(*lines) for lines in _per_seed_header(runs)]
    return markdown_table(PER_SEED_TITLE, _per_seed_caption(runs, style), header,
                          _per_seed_rows(runs, style))


def render_tables(runs_csv: str | Path, out_dir: str | Path,
                  comparisons_csv: str | Path | None = None) -> dict[str, Path]:
    """Write summary.{tex,md}, per_seed.{tex,md} and cost.{tex,md} into out_dir; return their
    paths.

    The differences come from comparisons_csv when given (the workflow's), else are computed.
    """
    runs = read_runs(runs_csv)
    comparisons = (stats.comparisons(runs) if comparisons_csv is None
                   else stats.read_comparisons(comparisons_csv))
    out = Path(out_dir)
    texts = {"summary.tex": summary_latex(runs, comparisons),
             "summary.md": summary_markdown(runs, comparisons),
             "per_seed.tex": per_seed_latex(runs), "per_seed.md": per_seed_markdown(runs),
             "cost.tex": cost.cost_latex(runs), "cost.md": cost.cost_markdown(runs)}
    paths = {}
    for name, text in texts.items():
        paths[name] = out / name
        atomic_write_text(paths[name], text)
    log.info("wrote %s in %s", ", ".join(texts), out)
    return paths


def table_paths(out_dir: str | Path) -> list[Path]:
    """Every file render_tables writes into out_dir."""
    return [Path(out_dir) / name for name in TABLES]
