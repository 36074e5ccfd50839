"""Results people put in a paper: run folders -> tidy CSV tables -> LaTeX/Markdown tables, figures.

Three steps, each reading only the previous step's files, so Snakemake reruns only what changed:

- `aggregate(run_dirs, runs_csv, epochs_csv)`: every run folder written by `sdnet.train`
  (`summary.json` + `metrics.csv`, see docs/DESIGN.md) into one row per run and one row per
  run-epoch. A folder that breaks the contract raises `SdnetError` naming its path.
- `render_tables(runs_csv, out_dir)`: `summary.{tex,md}` (mean +- std over seeds of the test error
  at the best-validation epoch, per data set x depth and variant, with the paper's numbers) and
  `per_seed.{tex,md}`.
- `plot_figures(runs_csv, epochs_csv, out_dir)`: `test_error_curves`, `final_error`, `epoch_time`
  as PDF and PNG.

Every output is written atomically and byte-for-byte deterministic for the same inputs.
Errors are percentages (0-100) everywhere, as in `metrics.csv`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sdnet import spec
from sdnet.errors import SdnetError
from sdnet.io import atomic_open, atomic_write_text
from sdnet.spec import METRICS_COLUMNS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Contract with sdnet.train and the paper's numbers
# ---------------------------------------------------------------------------------------------

# The columns sdnet.train writes (repeated here: importing sdnet.train would import torch).
# metrics.csv columns that must hold a number on every row (val_error is empty without a val split).
METRICS_REQUIRED_VALUES = ("epoch", "test_error", "epoch_seconds")
# One run = one (dataset, depth, variant, seed): the run folder layout makes these unique.
RUN_KEYS = ("dataset", "depth", "variant", "seed")
TEXT_FIELDS = ("dataset", "arch", "variant", "survival", "device")
# summary.json fields the report needs; the ones in NULLABLE_FIELDS may be null.
NUMBER_FIELDS = ("depth", "seed", "p_last", "epochs", "best_epoch", "best_val_error",
                 "test_error_at_best", "final_test_error", "train_seconds", "mean_epoch_seconds",
                 "parameters", "mean_blocks_computed")
NULLABLE_FIELDS = ("best_val_error",)
# runs.csv: these columns first, in this order; any further summary field or setting follows.
RUN_COLUMNS = ("dataset", "depth", "arch", "variant", "seed", "survival", "p_last", "epochs",
               "best_epoch", "best_val_error", "test_error_at_best", "final_test_error",
               "train_seconds", "mean_epoch_seconds", "parameters", "device",
               "mean_blocks_computed", "expected_block_fraction", "peak_memory_mb", "run_dir")
# Summary fields left out of runs.csv: a per-block list (expected_block_fraction sums it up).
SKIPPED_FIELDS = ("survival_probabilities",)

# Huang et al. 2016, Table 1 / Sec. 4: test error (%) on augmented CIFAR-10. "none" = constant
# depth; "linear" = linear decay over depth (Eq. 4) with p_L = PAPER_P_LAST.
PAPER_TEST_ERROR: dict[tuple[str, int, str], float] = {
    ("cifar10", 110, "none"): 6.41,
    ("cifar10", 110, "linear"): 5.25,
    ("cifar10", 1202, "none"): 6.67,
    ("cifar10", 1202, "linear"): 4.91,
}
PAPER_P_LAST = 0.5
PAPER_CITATION = "Huang et al. 2016"

DATASET_NAMES = {"cifar10": "CIFAR-10", "cinic10": "CINIC-10"}
SURVIVAL_NAMES = {"none": "constant depth", "linear": "linear decay",
                  "uniform": "uniform", "epoch-linear": "decay over epochs"}
# Okabe & Ito (2008) colour-blind-safe palette, black left out (used for means and text).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
FIGURES = ("test_error_curves", "final_error", "epoch_time")
FIGURE_FORMATS = ("pdf", "png")
TABLES = ("summary.tex", "summary.md", "per_seed.tex", "per_seed.md")


def paper_test_error(dataset: str, depth: int, survival: str, p_last: float) -> float | None:
    """The paper's test error for this setting, or None.

    Matched by survival rule, not variant name; p_L must be the paper's unless depth is constant.
    """
    if survival != "none" and not math.isclose(float(p_last), PAPER_P_LAST):
        return None
    return PAPER_TEST_ERROR.get((dataset, int(depth), survival))


# ---------------------------------------------------------------------------------------------
# Small helpers: CSV writing, names
# ---------------------------------------------------------------------------------------------

def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def dataset_name(dataset: str) -> str:
    """CIFAR-10 for cifar10; unknown names pass through."""
    return DATASET_NAMES.get(dataset, dataset)


def network_name(depth: int, arch: str | None = None) -> str:
    """ResNet-110; the family is named only where it is not the depth's default one."""
    name = f"ResNet-{int(depth)}"
    try:
        default = spec.resolve_arch(int(depth))
    except SdnetError:
        return name  # only one family has this depth
    if arch and arch != default:
        name += " (bottleneck)" if arch == "bottleneck" else " (basic blocks)"
    return name


# ---------------------------------------------------------------------------------------------
# aggregate
# ---------------------------------------------------------------------------------------------

def _run_folder(path: Path) -> Path:
    """Accept a run folder or its summary.json (the workflow lists summaries)."""
    path = Path(path)
    return path.parent if path.name == "summary.json" else path


def _malformed(folder: Path, what: str) -> SdnetError:
    return SdnetError(f"run folder {folder} is incomplete or malformed: {what}")


def _read_summary(folder: Path) -> dict[str, Any]:
    """summary.json, checked for the fields the report uses."""
    path = folder / "summary.json"
    if not path.is_file():
        raise _malformed(folder, "no summary.json (the run has not finished)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _malformed(folder, f"cannot parse {path}: {err}") from None
    if not isinstance(summary, dict):
        raise _malformed(folder, f"{path} is not a JSON object")
    fields = ("settings",) + TEXT_FIELDS + NUMBER_FIELDS
    missing = [f for f in fields if f not in summary]
    if missing:
        raise _malformed(folder, f"{path} lacks {', '.join(missing)}")
    if not isinstance(summary["settings"], dict):
        raise _malformed(folder, f"{path}: 'settings' is not an object")
    for field in NUMBER_FIELDS:
        value = summary[field]
        if value is None and field in NULLABLE_FIELDS:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise _malformed(folder, f"{path}: {field} is not a finite number ({value!r})")
    for field in TEXT_FIELDS:
        if not isinstance(summary[field], str) or not summary[field]:
            raise _malformed(folder, f"{path}: {field} is not a non-empty string")
    return summary


def _read_metrics(folder: Path, epochs: int) -> pd.DataFrame:
    """metrics.csv, checked for columns, numbers and one row for each epoch 1..epochs."""
    path = folder / "metrics.csv"
    if not path.is_file():
        raise _malformed(folder, "no metrics.csv")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise _malformed(folder, f"cannot parse {path}: {err}") from None
    missing = [c for c in METRICS_COLUMNS if c not in frame.columns]
    if missing:
        raise _malformed(folder, f"{path} lacks column(s) {', '.join(missing)}")
    try:
        for column in METRICS_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="raise")
    except (ValueError, TypeError) as err:
        raise _malformed(folder, f"{path}: non-numeric value in column {column}: {err}") from None
    for column in METRICS_REQUIRED_VALUES:
        if frame[column].isna().any():
            raise _malformed(folder, f"{path}: empty {column} value(s)")
    seen = frame["epoch"].tolist()
    if sorted(seen) != list(range(1, epochs + 1)):
        raise _malformed(folder, f"{path} has {len(seen)} epoch row(s) (epochs "
                         f"{_span(seen)}), summary.json says {epochs} epochs (1..{epochs})")
    frame["epoch"] = frame["epoch"].astype("int64")
    return frame.sort_values("epoch", kind="stable")


def _span(values: Sequence[float]) -> str:
    return f"{min(values):g}..{max(values):g}" if len(values) else "none"


def _cell(value: Any) -> Any:
    """A CSV cell: lists as compact JSON, everything else as is."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return value


def _run_row(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """One runs.csv row: summary fields, then settings (flattened) not already a summary field."""
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if key in ("settings", *SKIPPED_FIELDS):
            continue
        if isinstance(value, dict):  # e.g. versions -> version_torch
            prefix = "version" if key == "versions" else key
            row.update({f"{prefix}_{k}": _cell(v) for k, v in value.items()})
        else:
            row[key] = _cell(value)
    for key, value in summary["settings"].items():
        if key not in row:
            row[key] = _cell(value)
        elif _cell(value) != row[key]:  # e.g. device "auto" asked, "cuda:0" used
            row[f"setting_{key}"] = _cell(value)
    row["run_dir"] = str(folder)
    return row


def _ordered_columns(frame: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    head = [c for c in first if c in frame.columns]
    return frame[head + sorted(c for c in frame.columns if c not in head)]


def _check_unique(rows: list[dict[str, Any]]) -> None:
    seen: dict[tuple, str] = {}
    for row in rows:
        key = tuple(row[k] for k in RUN_KEYS)
        if key in seen:
            raise SdnetError(f"run folders {seen[key]} and {row['run_dir']} are the same run "
                             f"({', '.join(f'{k}={v}' for k, v in zip(RUN_KEYS, key))})")
        seen[key] = row["run_dir"]


def aggregate(run_dirs: Iterable[str | Path], runs_csv: str | Path,
              epochs_csv: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect run folders into runs.csv (one row per run) and epochs.csv (one per run-epoch).

    Fails before writing anything if any folder breaks the sdnet.train contract, so a table
    is never built from a half-written run.
    """
    given = [Path(p) for p in run_dirs]
    if not given:
        raise SdnetError("no run folders to aggregate")
    run_rows, epoch_frames = [], []
    for path in given:
        folder = _run_folder(path)
        summary = _read_summary(folder)
        metrics = _read_metrics(folder, int(summary["epochs"]))
        row = _run_row(folder, summary)
        run_rows.append(row)
        keys = pd.DataFrame({k: [row[k]] * len(metrics) for k in RUN_KEYS}, index=metrics.index)
        epoch_frames.append(pd.concat([keys, metrics], axis=1))
    _check_unique(run_rows)
    runs = _ordered_columns(pd.DataFrame(run_rows), RUN_COLUMNS)
    runs = runs.sort_values(list(RUN_KEYS), kind="stable").reset_index(drop=True)
    epochs = _ordered_columns(pd.concat(epoch_frames, ignore_index=True),
                              RUN_KEYS + METRICS_COLUMNS)
    epochs = epochs.sort_values([*RUN_KEYS, "epoch"], kind="stable").reset_index(drop=True)
    _write_csv(runs, Path(runs_csv))
    _write_csv(epochs, Path(epochs_csv))
    log.info("aggregated %d run(s), %d epoch row(s) -> %s, %s", len(runs), len(epochs),
             runs_csv, epochs_csv)
    return runs, epochs


# ---------------------------------------------------------------------------------------------
# Reading the aggregated tables back
# ---------------------------------------------------------------------------------------------

RUNS_NEEDED = ("dataset", "depth", "arch", "variant", "seed", "survival", "p_last", "epochs",
               "best_epoch", "best_val_error", "test_error_at_best", "final_test_error",
               "train_seconds", "mean_epoch_seconds", "mean_blocks_computed")
EPOCHS_NEEDED = RUN_KEYS + ("epoch", "test_error", "epoch_seconds")


def _read_table(path: str | Path, needed: Sequence[str]) -> pd.DataFrame:
    """A CSV written by aggregate(); text columns stay text (a variant named '1' or 'NA' too)."""
    path = Path(path)
    if not path.is_file():
        raise SdnetError(f"{path} does not exist (run `sdnet report aggregate` first)")
    text = {c: "str" for c in TEXT_FIELDS}
    try:
        frame = pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SdnetError(f"cannot parse {path}: {err}") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SdnetError(f"{path} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise SdnetError(f"{path} has no rows")
    for column in TEXT_FIELDS:
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


def read_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv as written by aggregate()."""
    return _read_table(path, RUNS_NEEDED)


def read_epochs(path: str | Path) -> pd.DataFrame:
    """epochs.csv as written by aggregate()."""
    return _read_table(path, EPOCHS_NEEDED)


def _rule_rank(survival: str) -> int:
    rules = spec.SURVIVAL_RULES
    return rules.index(survival) if survival in rules else len(rules)


def variant_order(runs: pd.DataFrame) -> list[str]:
    """Constant depth first, then the paper's rule, then the others; by name within a rule."""
    first = runs.drop_duplicates("variant")
    keyed = sorted((_rule_rank(r.survival), -float(r.p_last), r.variant)
                   for r in first.itertuples())
    return [variant for *_, variant in keyed]


def _panels(runs: pd.DataFrame) -> list[tuple[str, int]]:
    """(dataset, depth) pairs, CIFAR-10 first, shallow first."""
    pairs = runs[["dataset", "depth"]].drop_duplicates()
    known = list(spec.DATASETS)
    return sorted(((d, int(n)) for d, n in pairs.itertuples(index=False)),
                  key=lambda p: (known.index(p[0]) if p[0] in known else len(known), p[0], p[1]))


def _row_network(runs: pd.DataFrame, dataset: str, depth: int) -> str:
    archs = sorted(set(runs[(runs.dataset == dataset) & (runs.depth == depth)].arch))
    return " / ".join(network_name(depth, a) for a in archs) or network_name(depth)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def _seed_stats(values: pd.Series) -> tuple[float, float, int]:
    """mean, sample std (NaN for one seed), n."""
    n = int(values.count())
    return float(values.mean()), float(values.std(ddof=1)) if n > 1 else math.nan, n


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, depth, variant): test error at best-val epoch over seeds, hours."""
    rows = []
    for (dataset, depth, variant), group in runs.groupby(["dataset", "depth", "variant"],
                                                         sort=True):
        mean, std, n = _seed_stats(group["test_error_at_best"])
        first = group.iloc[0]
        rows.append({
            "dataset": dataset, "depth": int(depth), "variant": variant,
            "survival": first.survival, "p_last": float(first.p_last),
            "mean": mean, "std": std, "n": n,
            "hours": float(group["train_seconds"].mean()) / 3600.0,
            "epochs": int(group["epochs"].max()),
            "paper": paper_test_error(dataset, int(depth), first.survival, first.p_last),
        })
    return pd.DataFrame(rows)


def _pick(cells: pd.DataFrame, survival: str, name: str, p_last: float | None) -> pd.Series | None:
    """The row's variant with this rule (and p_L), preferring the conventional name."""
    match = cells[cells.survival == survival]
    if p_last is not None:
        match = match[[math.isclose(p, p_last) for p in match.p_last]]
    if match.empty:
        return None
    named = match[match.variant == name]
    return (named if not named.empty else match).iloc[0]


def time_ratio(cells: pd.DataFrame) -> float | None:
    """Training time of the paper's stochastic depth over constant depth, for one table row."""
    base = _pick(cells, "none", "baseline", None)
    stoch = _pick(cells, "linear", "stochastic", PAPER_P_LAST)
    if base is None or stoch is None or base.hours <= 0:
        return None
    return float(stoch.hours / base.hours)


def _best_variants(cells: pd.DataFrame) -> set[str]:
    """Variants with the lowest mean error (as printed); none when the row has one variant."""
    if len(cells) < 2:
        return set()
    printed = cells["mean"].map(lambda mean: float(f"{mean:.2f}"))
    return set(cells.variant[printed == printed.min()])


def _fmt_hours(hours: float, style: _Style) -> str:
    """Hours to two decimals; a few seconds show as '<0.01' (in math mode for LaTeX)."""
    if hours >= 0.005:
        return f"{hours:.2f}"
    return "$<0.01$" if style.latex else "<0.01"


def _fmt_number(value: float | None, digits: int = 2) -> str:
    return "--" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


class _Style:
    """How one output format writes the few things that differ between LaTeX and Markdown."""

    def __init__(self, latex: bool) -> None:
        self.latex = latex

    @property
    def pct(self) -> str:
        return "\\%" if self.latex else "%"

    @property
    def pm(self) -> str:
        return "$\\pm$" if self.latex else "±"

    def text(self, value: str) -> str:
        return latex_escape(value) if self.latex else value.replace("|", "\\|")

    def p_last(self, value: float) -> str:
        return f"$p_L = {value:g}$" if self.latex else f"p_L = {value:g}"

    def header(self, *lines: str) -> str:
        """A column name on one or more lines (LaTeX stacks them to keep columns narrow)."""
        if not self.latex or len(lines) == 1:
            return " ".join(lines)
        return "\\begin{tabular}[b]{@{}c@{}}" + " \\\\ ".join(lines) + "\\end{tabular}"

    def error(self, mean: float, std: float, n: int | None, bold: bool) -> str:
        """'5.25 ± 0.12', with '(n)' unless the column header gives n; one seed: no std."""
        pm = " \\pm " if self.latex else " ± "
        body = f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f}{pm}{std:.2f}"
        if self.latex:
            body = f"$\\mathbf{{{body}}}$" if bold else f"${body}$"
        elif bold:
            body = f"**{body}**"
        return body if n is None else f"{body} ({n})"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (variant names carry underscores).

    Also < > |, which print as other glyphs in LaTeX's default font encoding.
    """
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                "|": r"\textbar{}"}
    return "".join(specials.get(char, char) for char in str(text))


@dataclass(frozen=True)
class _Group:
    """One variant's column group in the summary table."""

    variant: str
    paper: bool  # has a paper column (the paper reports this rule in some row)
    n: int | None  # seeds per cell when the same in every row, else None (then n is per cell)

    def names(self, style: _Style) -> list[str]:
        error = style.header("Error", *([] if self.n is None else [f"(n = {self.n})"]))
        return [error, *(["Paper"] if self.paper else []), "Hours"]


def _summary_layout(summary: pd.DataFrame, order: list[str]) -> list[_Group]:
    groups = []
    for variant in order:
        cells = summary[summary.variant == variant]
        if cells.empty:
            continue
        counts = set(cells.n)
        groups.append(_Group(variant, bool(cells.paper.notna().any()),
                             counts.pop() if len(counts) == 1 else None))
    return groups


def _summary_cells(summary: pd.DataFrame, runs: pd.DataFrame, style: _Style,
                   layout: list[_Group]) -> list[list[str]]:
    """Body rows of the summary table (data set, network, per-variant groups, time ratio)."""
    rows = []
    for dataset, depth in _panels(runs):
        cells = summary[(summary.dataset == dataset) & (summary.depth == depth)]
        best = _best_variants(cells)
        row = [style.text(dataset_name(dataset)), style.text(_row_network(runs, dataset, depth))]
        for group in layout:
            match = cells[cells.variant == group.variant]
            if match.empty:
                row += ["--"] * len(group.names(style))
                continue
            cell = match.iloc[0]
            n = None if group.n is not None else int(cell.n)
            row.append(style.error(cell["mean"], cell["std"], n, group.variant in best))
            if group.paper:
                row.append(_fmt_number(cell.paper))
            row.append(_fmt_hours(cell.hours, style))
        row.append(_fmt_number(time_ratio(cells)))
        rows.append(row)
    return rows


def _variants_text(runs: pd.DataFrame, order: list[str], style: _Style) -> str:
    """'baseline: constant depth; stochastic: linear decay, p_L = 0.5' for the captions."""
    first = runs.drop_duplicates("variant").set_index("variant")
    parts = []
    for v in order:
        survival, p_last = first.loc[v, "survival"], float(first.loc[v, "p_last"])
        rule = style.text(SURVIVAL_NAMES.get(survival, survival))
        desc = rule if survival == "none" else f"{rule}, {style.p_last(p_last)}"
        parts.append(f"{style.text(v)}: {desc}")
    return "; ".join(parts)


def _epochs_text(runs: pd.DataFrame) -> str:
    lo, hi = int(runs.epochs.min()), int(runs.epochs.max())
    return f"{lo} epochs" if lo == hi else f"{lo} to {hi} epochs"


def _summary_caption(runs: pd.DataFrame, order: list[str], style: _Style) -> str:
    paper_pl = style.p_last(PAPER_P_LAST)
    return (f"Test error ({style.pct}) at the epoch with the lowest validation error: mean "
            f"{style.pm} sample standard deviation over n seeds (n under Error, or in "
            f"parentheses); the lowest mean of each row in bold. Paper: {PAPER_CITATION} "
            f"(constant depth; linear decay, {paper_pl}). Hours: mean training time per run. "
            f"Time ratio: training time of linear decay ({paper_pl}) over constant depth. "
            f"Runs trained for {_epochs_text(runs)}. Variants: "
            f"{_variants_text(runs, order, style)}.")


def _per_seed_caption(runs: pd.DataFrame, order: list[str], style: _Style) -> str:
    return (f"Every run: validation and test error ({style.pct}) at the epoch with the lowest "
            f"validation error (best epoch), test error at the last epoch, training hours, "
            f"seconds per epoch and the share of residual branches computed in training "
            f"({style.pct}). Variants: {_variants_text(runs, order, style)}.")


def _latex_document(comment: str, caption: str, label: str, colspec: str,
                    header: list[str], body: list[str]) -> str:
    """A bare table environment that needs only booktabs."""
    lines = [
        f"% {comment}",
        "% Needs only \\usepackage{booktabs}; \\input{} this file where the table goes.",
        "\\begin{table}[tbp]",
        "\\centering",
        "\\footnotesize",
        "\\setlength{\\tabcolsep}{3.5pt}",
        f"\\caption{{{caption}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{@{{}}{colspec}@{{}}}}",
        "\\toprule",
        *header,
        "\\midrule",
        *body,
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
        "",
    ]
    return "\n".join(lines)


def _latex_row(cells: Sequence[str]) -> str:
    return " & ".join(cells) + " \\\\"


def _latex_blocks(rows: list[list[str]], keys: int, columns: int,
                  blank_repeats: int = 0) -> list[str]:
    """Table rows under an italic heading row whenever their first `keys` cells change.

    The key cells leave the rows (saving columns); the next `blank_repeats` cells are left
    blank where they repeat the row above, as usual in booktabs tables.
    """
    lines: list[str] = []
    previous: list[str] | None = None
    for row in rows:
        if previous is None or row[:keys] != previous[:keys]:
            if previous is not None:
                lines.append("\\addlinespace")
            heading = f"\\emph{{{', '.join(row[:keys])}}}"
            lines.append(_latex_row([f"\\multicolumn{{{columns}}}{{@{{}}l}}{{{heading}}}"]))
            previous = None
        shown = [("" if previous is not None and row[: keys + i + 1] == previous[: keys + i + 1]
                  else cell) if i < blank_repeats else cell
                 for i, cell in enumerate(row[keys:])]
        lines.append(_latex_row(shown))
        previous = row
    return lines


def _markdown_document(title: str, caption: str, header: list[str], body: list[list[str]]) -> str:
    from tabulate import tabulate

    table = tabulate(body, headers=header, tablefmt="github", disable_numparse=True)
    note = "<!-- generated by sdnet.report.render_tables -->"
    return f"{note}\n\n**{title}.** {caption}\n\n{table}\n"


def summary_latex(runs: pd.DataFrame) -> str:
    """summary.tex: data set x depth rows, one column group per variant, time ratio."""
    style, order = _Style(latex=True), variant_order(runs)
    summary = summary_frame(runs)
    layout = _summary_layout(summary, order)
    top, rules, sub, col = [""], [], [], 2
    for group in layout:
        names = group.names(style)
        top.append(f"\\multicolumn{{{len(names)}}}{{c}}{{{style.text(group.variant)}}}")
        rules.append(f"\\cmidrule(lr){{{col}-{col + len(names) - 1}}}")
        sub += names
        col += len(names)
    header = [_latex_row([*top, ""]), "".join(rules),
              _latex_row(["Network", *sub, style.header("Time", "ratio")])]
    body = _latex_blocks(_summary_cells(summary, runs, style, layout), 1, col)
    return _latex_document("sdnet summary table, generated by sdnet.report.render_tables.",
                           _summary_caption(runs, order, style), "tab:sdnet-summary",
                           "l" + "c" * (col - 1),
                           header, body)


def summary_markdown(runs: pd.DataFrame) -> str:
    """summary.md: the same table as summary.tex, one header row."""
    style, order = _Style(latex=False), variant_order(runs)
    summary = summary_frame(runs)
    layout = _summary_layout(summary, order)
    header = ["Data set", "Network"]
    for group in layout:
        header += [f"{style.text(group.variant)}: {name.lower()}" for name in group.names(style)]
    header.append("Time ratio")
    body = _summary_cells(summary, runs, style, layout)
    return _markdown_document("Test error of stochastic depth",
                              _summary_caption(runs, order, style), header, body)


def _per_seed_rows(runs: pd.DataFrame, style: _Style) -> list[list[str]]:
    order = {v: i for i, v in enumerate(variant_order(runs))}
    panels = {p: i for i, p in enumerate(_panels(runs))}
    ranked = sorted(runs.itertuples(index=False),
                    key=lambda r: (panels[(r.dataset, int(r.depth))], order[r.variant], r.seed))
    return [[style.text(dataset_name(r.dataset)), style.text(network_name(r.depth, r.arch)),
             style.text(r.variant), str(int(r.seed)), str(int(r.epochs)), str(int(r.best_epoch)),
             _fmt_number(float(r.best_val_error)), _fmt_number(float(r.test_error_at_best)),
             _fmt_number(float(r.final_test_error)), _fmt_hours(r.train_seconds / 3600.0, style),
             _fmt_number(float(r.mean_epoch_seconds), 1),
             _fmt_number(100.0 * float(r.mean_blocks_computed), 1)]
            for r in ranked]


PER_SEED_HEADER = (("Data set",), ("Network",), ("Variant",), ("Seed",), ("Epochs",),
                   ("Best", "epoch"), ("Val.", "error"), ("Test", "error"), ("Final test", "error"),
                   ("Hours",), ("s per", "epoch"), ("Blocks", "run"))


def per_seed_latex(runs: pd.DataFrame) -> str:
    """per_seed.tex: one row per run under a heading row per data set and network."""
    style = _Style(latex=True)
    columns = len(PER_SEED_HEADER) - 2
    header = [_latex_row([style.header(*lines) for lines in PER_SEED_HEADER[2:]])]
    body = _latex_blocks(_per_seed_rows(runs, style), 2, columns, blank_repeats=1)
    return _latex_document("sdnet per-seed table, generated by sdnet.report.render_tables.",
                           _per_seed_caption(runs, variant_order(runs), style),
                           "tab:sdnet-per-seed", "l" + "r" * (columns - 1), header, body)


def per_seed_markdown(runs: pd.DataFrame) -> str:
    """per_seed.md: the same table as per_seed.tex (every cell filled: easy to parse)."""
    style = _Style(latex=False)
    header = [style.header(*lines) for lines in PER_SEED_HEADER]
    return _markdown_document("Every run", _per_seed_caption(runs, variant_order(runs), style),
                              header, _per_seed_rows(runs, style))


def render_tables(runs_csv: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write summary.{tex,md} and per_seed.{tex,md} into out_dir; return their paths."""
    runs = read_runs(runs_csv)
    out = Path(out_dir)
    texts = {"summary.tex": summary_latex(runs), "summary.md": summary_markdown(runs),
             "per_seed.tex": per_seed_latex(runs), "per_seed.md": per_seed_markdown(runs)}
    paths = {}
    for name, text in texts.items():
        paths[name] = out / name
        atomic_write_text(paths[name], text)
    log.info("wrote %s in %s", ", ".join(texts), out)
    return paths


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

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
def _figure_style() -> Iterator[None]:
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(FIGURE_RC):
        yield


def _new_figure(panels: int, legend_rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A Figure on the Agg canvas (no pyplot state) with one axes per panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(panels, MAX_COLUMNS)
    nrows = math.ceil(panels / ncols)
    size = (PANEL_SIZE[0] * ncols + 0.4, PANEL_SIZE[1] * nrows + 0.25 * legend_rows + 0.2)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[panels:]:
        fig.delaxes(ax)
    return fig, list(grid[:panels])


def _colors(order: Sequence[str]) -> dict[str, str]:
    return {v: OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(order)}


def _panel_title(runs: pd.DataFrame, dataset: str, depth: int) -> str:
    return f"{dataset_name(dataset)}, {_row_network(runs, dataset, depth)}"


def _in_panel(frame: pd.DataFrame, dataset: str, depth: int) -> pd.DataFrame:
    return frame[(frame.dataset == dataset) & (frame.depth == depth)]


def _seed_offsets(n: int, width: float = 0.24) -> list[float]:
    """Fixed horizontal spread for n seed points (no random jitter: same bytes every time)."""
    return [0.0] if n == 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]


def _legend_below(fig: Figure, handles: list, title: str | None = None) -> None:
    """Legend under the panels, never over the data."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               frameon=False, title=title, title_fontsize=8)


def _variant_axis(ax: Axes, present: list[str]) -> None:
    rotate = len(present) > 3 or max(len(v) for v in present) > 10
    ax.set_xticks(range(len(present)), present, rotation=25 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(present) - 0.4)
    ax.grid(False, axis="x")


def _plain_log_axis(ax: Axes) -> None:
    """Log y axis labelled 5, 10, 20 rather than 10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def plot_test_error_curves(runs: pd.DataFrame, epochs: pd.DataFrame,
                           log_scale: bool = True) -> Figure:
    """Test error vs epoch, one panel per data set x depth, mean +- std band over seeds."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    order, panels = variant_order(runs), _panels(runs)
    colors = _colors(order)
    use_log = log_scale and bool((epochs.test_error > 0).all())
    if log_scale and not use_log:
        log.warning("a test error of 0 %% cannot go on a log axis; using a linear axis")
    fig, axes = _new_figure(len(panels))
    for ax, (dataset, depth) in zip(axes, panels):
        sub = _in_panel(epochs, dataset, depth)
        for variant in order:
            curve = sub[sub.variant == variant].groupby("epoch").test_error
            if not len(curve):
                continue
            stats = curve.agg(["mean", "std", "count"])
            x, mean = stats.index.to_numpy(), stats["mean"].to_numpy()
            ax.plot(x, mean, color=colors[variant], lw=1.2, marker="o" if len(x) < 3 else None,
                    ms=3)
            spread = stats["std"].where(stats["count"] > 1).to_numpy()
            if not pd.isna(spread).all():
                low = mean - spread
                low = low.clip(min=mean.min() / 2) if use_log else low
                ax.fill_between(x, low, mean + spread, color=colors[variant], alpha=0.2, lw=0)
        if use_log:
            _plain_log_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.set(xlabel="Epoch", ylabel="Test error (%)", title=_panel_title(runs, dataset, depth))
    handles = [Line2D([], [], color=colors[v], lw=1.5, label=v) for v in order]
    _legend_below(fig, handles, "mean over seeds, band: ±1 std")
    return fig


def plot_final_error(runs: pd.DataFrame) -> Figure:
    """Test error at the best-validation epoch: seeds as dots, the mean a bar, the paper a star."""
    from matplotlib.lines import Line2D

    order, panels = variant_order(runs), _panels(runs)
    colors = _colors(order)
    fig, axes = _new_figure(len(panels))
    any_paper = False
    for ax, (dataset, depth) in zip(axes, panels):
        sub = _in_panel(runs, dataset, depth)
        present = [v for v in order if v in set(sub.variant)]
        for i, variant in enumerate(present):
            group = sub[sub.variant == variant].sort_values("seed")
            values = group.test_error_at_best.to_numpy()
            xs = [i + dx for dx in _seed_offsets(len(values))]
            ax.scatter(xs, values, s=20, color=colors[variant], alpha=0.85, lw=0, zorder=3)
            ax.hlines(values.mean(), i - 0.25, i + 0.25, color="black", lw=1.5, zorder=4)
            paper = paper_test_error(dataset, depth, group.survival.iloc[0], group.p_last.iloc[0])
            if paper is not None:
                any_paper = True
                ax.scatter([i + 0.34], [paper], marker="*", s=60, facecolor="white",
                           edgecolor="black", lw=0.8, zorder=4)
        _variant_axis(ax, present)
        ax.set(xlabel="Variant", ylabel="Test error at best val. epoch (%)",
               title=_panel_title(runs, dataset, depth))
    handles = [Line2D([], [], ls="", marker="o", color="grey", label="one seed"),
               Line2D([], [], color="black", lw=1.5, label="mean over seeds")]
    if any_paper:
        handles.append(Line2D([], [], ls="", marker="*", ms=9, markerfacecolor="white",
                              markeredgecolor="black", label=PAPER_CITATION))
    _legend_below(fig, handles)
    return fig


def _baseline_seconds(sub: pd.DataFrame) -> float | None:
    """Mean seconds per epoch of the constant-depth variant of one panel."""
    constant = sub[sub.survival == "none"]
    if constant.empty:
        return None
    named = constant[constant.variant == "baseline"]
    chosen = named if not named.empty else constant[constant.variant == constant.variant.min()]
    return float(chosen.mean_epoch_seconds.mean())


def plot_epoch_time(runs: pd.DataFrame) -> Figure:
    """Seconds per training epoch per variant: the time stochastic depth saves."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    order, panels = variant_order(runs), _panels(runs)
    colors = _colors(order)
    fig, axes = _new_figure(len(panels))
    for ax, (dataset, depth) in zip(axes, panels):
        sub = _in_panel(runs, dataset, depth)
        present = [v for v in order if v in set(sub.variant)]
        base = _baseline_seconds(sub)
        top = 0.0
        for i, variant in enumerate(present):
            values = sub[sub.variant == variant].sort_values("seed").mean_epoch_seconds.to_numpy()
            mean = float(values.mean())
            top = max(top, float(values.max()), mean)
            ax.bar(i, mean, width=0.6, color=colors[variant], alpha=0.85, zorder=2)
            xs = [i + dx for dx in _seed_offsets(len(values), 0.3)]
            ax.scatter(xs, values, s=10, color="black", lw=0, zorder=3)
            if base:
                ax.annotate(f"{mean / base:.2f}×", (i, max(float(values.max()), mean)),
                            xytext=(0, 5), textcoords="offset points", ha="center", fontsize=8)
        _variant_axis(ax, present)
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
        ax.set(xlabel="Variant", ylabel="Training time per epoch (s)",
               title=_panel_title(runs, dataset, depth))
    handles = [Patch(color="grey", alpha=0.85, label="mean over seeds"),
               Line2D([], [], ls="", marker="o", ms=4, color="black", label="one seed")]
    _legend_below(fig, handles, "numbers: time relative to constant depth")
    return fig


def _save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Each format in turn; the layout is solved once (on the first save) and then frozen."""
    paths = []
    for i, fmt in enumerate(FIGURE_FORMATS):
        if i:
            fig.set_layout_engine("none")
        path = out_dir / f"{name}.{fmt}"
        meta = PDF_METADATA if fmt == "pdf" else PNG_METADATA
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=fmt, metadata=meta)
        paths.append(path)
    return paths


def plot_figures(runs_csv: str | Path, epochs_csv: str | Path, out_dir: str | Path,
                 *, log_scale: bool = True) -> dict[str, Figure]:
    """Write test_error_curves, final_error, epoch_time (.pdf and .png); return the Figures."""
    runs, epochs = read_runs(runs_csv), read_epochs(epochs_csv)
    out = Path(out_dir)
    with _figure_style():
        figures = {"test_error_curves": plot_test_error_curves(runs, epochs, log_scale),
                   "final_error": plot_final_error(runs),
                   "epoch_time": plot_epoch_time(runs)}
        for name, fig in figures.items():
            _save_figure(fig, out, name)
    log.info("wrote %s (.pdf, .png) in %s", ", ".join(figures), out)
    return figures


def figure_paths(out_dir: str | Path) -> list[Path]:
    """Every file plot_figures writes into out_dir."""
    return [Path(out_dir) / f"{n}.{f}" for n in FIGURES for f in FIGURE_FORMATS]


def table_paths(out_dir: str | Path) -> list[Path]:
    """Every file render_tables writes into out_dir."""
    return [Path(out_dir) / name for name in TABLES]


# ---------------------------------------------------------------------------------------------
# Glue for workflow/scripts/*.py (plain arguments: this package knows nothing of Snakemake)
# ---------------------------------------------------------------------------------------------

def as_paths(value: str | Path | Iterable[str | Path]) -> list[Path]:
    """One path or many, as a list (a named Snakemake input is either)."""
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def as_flag(value: Any, name: str) -> bool:
    """A yes/no setting from a config: a bool, or true/false/yes/no/1/0 as text."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, (str, int)) and str(value).strip().lower() in words:
        return words[str(value).strip().lower()]
    raise SdnetError(f"{name} must be true or false, got {value!r}")


def output_folder(declared: Iterable[str | Path], expected: Callable[[Path], list[Path]]) -> Path:
    """The one folder of the declared outputs; each must be a file the step writes there."""
    paths = as_paths(declared)
    if not paths:
        raise SdnetError("no outputs declared")
    folder = paths[0].parent
    allowed = {p.name for p in expected(folder)}
    for path in paths:
        if path.parent != folder or path.name not in allowed:
            raise SdnetError(f"declared output {path} is not one of the files written into "
                             f"{folder}: {', '.join(sorted(allowed))}")
    return folder


def check_written(paths: Iterable[str | Path]) -> None:
    """Raise SdnetError naming any declared output that is missing or empty."""
    missing = [str(p) for p in as_paths(paths) if not Path(p).is_file() or not
               Path(p).stat().st_size]
    if missing:
        raise SdnetError(f"output(s) not written: {', '.join(missing)}")


@contextlib.contextmanager
def script_logging(log_path: str | Path | None) -> Iterator[None]:
    """Run a workflow script's body with logging and stderr in its log file.

    An SdnetError becomes one clear line in the log (and on the real stderr) and exit status 1;
    any other exception leaves its traceback in the log and exits 1 too.
    """
    stream = open(log_path, "w", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, ours = logging.getLogger(), logging.getLogger("sdnet")
    levels = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries' chatter (fontTools) stays out
    ours.setLevel(logging.INFO)
    where = f" (log: {log_path})" if log_path else ""
    try:
        with contextlib.redirect_stderr(stream):
            yield
    except SdnetError as err:
        log.error("%s", err)
        print(f"sdnet: error: {err}{where}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:
        log.exception("unexpected failure")
        print(f"sdnet: unexpected error: {err!r}{where}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        if log_path:
            stream.close()
