"""Run folders -> two tidy CSV tables, and reading those tables back, checked.

`aggregate(run_dirs, runs_csv, epochs_csv, gradients_csv=None)` turns every finished run folder
(read through `sdnet.train.runfolder`, which describes its files) into one runs.csv row per run
(summary fields, with the run's `network` name made from its depth and family, then the
settings flattened), one epochs.csv row per run-epoch and one gradients.csv row per
run-epoch-block (the run folders' gradients.csv). A run is (dataset, network, variant, seed): a
CIFAR and a bottleneck ResNet-50 are two runs. A folder that breaks the trainer's contract
raises `SdnetError` naming its path before anything is written; a run trained before sdnet
recorded gradients (no gradients.csv, no grad_first_conv) is not an error: it has no gradient
rows and an empty grad_first_conv.
`read_runs` / `read_epochs` / `read_gradients` give those tables back to the tables, figures
and statistics; a
runs.csv a user edited into nonsense (a run twice, a non-numeric error, an unknown survival
rule) is one error line naming the file and line. Tables written before networks had names
(no `network` column) are read as the depth's own family's (`resnet110`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sdnet import networks, spec
from sdnet.atomic import atomic_open
from sdnet.errors import SdnetError
from sdnet.settings import default_augment
from sdnet.spec import GRADIENT_COLUMNS, METRICS_COLUMNS
from sdnet.train import runfolder

log = logging.getLogger(__name__)

# metrics.csv columns that must hold a number on every row (val_error is empty without a val split).
METRICS_REQUIRED_VALUES = ("epoch", "test_error", "epoch_seconds")
# metrics.csv columns a run from an older sdnet lacks (left empty in epochs.csv).
METRICS_OPTIONAL = ("grad_first_conv", "val_error_top5", "test_error_top5")
# One run = one (dataset, network, variant, seed): the run folder layout makes these unique.
RUN_KEYS = ("dataset", "network", "variant", "seed")
# epochs.csv's (and gradients.csv's) run columns, and the order of the tables' rows (shallow
# networks first).
EPOCH_KEYS = ("dataset", "network", "depth", "variant", "seed")
ROW_ORDER = ("dataset", "depth", "network", "variant", "seed")
# Text fields of summary.json, and the text columns of runs.csv (never parsed as numbers).
TEXT_FIELDS = ("dataset", "arch", "variant", "survival", "device")
TEXT_COLUMNS = (*TEXT_FIELDS, "network")
# summary.json fields the report needs; the ones in NULLABLE_FIELDS may be null.
NUMBER_FIELDS = ("depth", "seed", "p_last", "epochs", "best_epoch", "best_val_error",
                 "test_error_at_best", "final_test_error", "train_seconds", "mean_epoch_seconds",
                 "parameters", "mean_blocks_computed")
NULLABLE_FIELDS = ("best_val_error",)
# runs.csv: these columns first, in this order; any further summary field or setting follows.
RUN_COLUMNS = ("dataset", "network", "depth", "arch", "variant", "seed", "survival", "p_last",
               "augment",
               "epochs", "best_epoch", "best_val_error", "test_error_at_best",
               "final_test_error", "train_seconds", "mean_epoch_seconds", "parameters", "device",
               "mean_blocks_computed", "expected_block_fraction", "peak_memory_mb", "run_dir")
# Summary fields left out of runs.csv: a per-block list (expected_block_fraction sums it up).
SKIPPED_FIELDS = ("survival_probabilities",)
# What the report reads back from runs.csv / epochs.csv.
RUNS_NUMBERS = ("depth", "seed", "p_last", "epochs", "best_epoch", "best_val_error",
                "test_error_at_best", "final_test_error", "train_seconds", "mean_epoch_seconds",
                "mean_blocks_computed")
RUNS_NEEDED = ("dataset", "arch", "variant", "survival", *RUNS_NUMBERS)
EPOCHS_NUMBERS = ("depth", "seed", "epoch", "test_error", "epoch_seconds")
EPOCHS_NEEDED = ("dataset", "depth", "variant", "seed", "epoch", "test_error", "epoch_seconds")
GRADIENTS_NUMBERS = ("depth", "seed", "epoch", "block", "active_steps")


# ---------------------------------------------------------------------------------------------
# Run folders -> runs.csv, epochs.csv
# ---------------------------------------------------------------------------------------------

def _run_folder(path: Path) -> Path:
    """Accept a run folder or its summary.json (the workflow lists summaries)."""
    path = Path(path)
    return path.parent if path.name == runfolder.SUMMARY else path


def _malformed(folder: Path, what: str) -> SdnetError:
    return SdnetError(f"run folder {folder} is incomplete or malformed: {what}")


def _read_run_files(folder: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """summary.json and metrics.csv, through sdnet.train.runfolder (which knows the files)."""
    try:
        summary = runfolder.read_summary(folder)
        if summary is None:
            raise _malformed(folder, f"no {runfolder.SUMMARY} (the run has not finished)")
        if not (folder / runfolder.METRICS).is_file():
            raise _malformed(folder, f"no {runfolder.METRICS}")
        rows = runfolder.read_metrics(folder)
    except SdnetError as err:
        if str(folder) in str(err):
            raise
        raise _malformed(folder, str(err)) from None
    return summary, pd.DataFrame(rows)


def _check_summary(folder: Path, summary: dict[str, Any]) -> None:
    """The summary.json fields the report uses are there and well typed."""
    path = folder / runfolder.SUMMARY
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
    try:
        networks.network_name(int(summary["depth"]), summary["arch"])
    except networks.SpecError as err:
        raise _malformed(folder, f"{path}: depth and arch name no network: {err}") from None


def _check_metrics(folder: Path, frame: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """metrics.csv has every column, numbers where needed and one row for each epoch 1..epochs."""
    path = folder / runfolder.METRICS
    missing = [c for c in METRICS_COLUMNS if c not in frame.columns and c not in METRICS_OPTIONAL]
    if missing:
        raise _malformed(folder, f"{path} lacks column(s) {', '.join(missing)}")
    frame = frame.reindex(columns=list(METRICS_COLUMNS)).astype(float)
    for column in METRICS_REQUIRED_VALUES:
        if frame[column].isna().any():
            raise _malformed(folder, f"{path}: empty {column} value(s)")
    seen = frame["epoch"].tolist()
    if sorted(seen) != list(range(1, epochs + 1)):
        raise _malformed(folder, f"{path} has {len(seen)} epoch row(s) (epochs "
                         f"{_span(seen)}), summary.json says {epochs} epochs (1..{epochs})")
    frame["epoch"] = frame["epoch"].astype("int64")
    return frame.sort_values("epoch", kind="stable")


def _read_gradient_rows(folder: Path, epochs: int) -> pd.DataFrame:
    """The run folder's gradients.csv (none for a run from before it), checked: whole epochs
    and blocks, steps >= 0, a mean exactly where a block ran."""
    path = folder / runfolder.GRADIENTS
    try:
        frame = pd.DataFrame(runfolder.read_gradients(folder), columns=list(GRADIENT_COLUMNS))
    except SdnetError as err:
        raise _malformed(folder, str(err)) from None
    if frame.empty:
        return frame
    counts = frame[["epoch", "block", "active_steps"]]
    if counts.isna().any().any() or (counts < 0).any().any() or not frame.epoch.between(
            1, epochs).all():
        raise _malformed(folder, f"{path}: epoch, block and active_steps must be whole numbers "
                         f"(epochs 1..{epochs})")
    ran = frame.active_steps > 0
    if frame.mean_abs_grad[ran].isna().any() or frame.mean_abs_grad[~ran].notna().any():
        raise _malformed(folder, f"{path}: mean_abs_grad must be given exactly where "
                         "active_steps > 0")
    return frame.astype({"epoch": "int64", "block": "int64", "active_steps": "int64",
                         "mean_abs_grad": float})


def _span(values: Sequence[float]) -> str:
    return f"{min(values):g}..{max(values):g}" if len(values) else "none"


def _cell(value: Any) -> Any:
    """A CSV cell: lists as compact JSON, everything else as is."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return value


def _run_row(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """One runs.csv row: summary fields, then settings (flattened) not already a summary field."""
    row: dict[str, Any] = {"network": networks.network_name(int(summary["depth"]),
                                                            summary["arch"])}
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
    if row.get("augment") is None:  # a run from before the setting, or left to the default
        row["augment"] = default_augment(str(row["dataset"]))
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
                             f"({_describe_run(key)})")
        seen[key] = row["run_dir"]


def _describe_run(key: Sequence[Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(RUN_KEYS, key))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def aggregate(run_dirs: Iterable[str | Path], runs_csv: str | Path, epochs_csv: str | Path,
              gradients_csv: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect run folders into runs.csv (one row per run), epochs.csv (one per run-epoch) and,
    when `gradients_csv` is given, gradients.csv (one per run-epoch-block).

    Fails before writing anything if any folder breaks the sdnet.train.loop contract, so a table
    is never built from a half-written run.
    """
    given = [Path(p) for p in run_dirs]
    if not given:
        raise SdnetError("no run folders to aggregate")
    run_rows, epoch_frames, gradient_frames = [], [], []
    for path in given:
        folder = _run_folder(path)
        summary, metrics = _read_run_files(folder)
        _check_summary(folder, summary)
        metrics = _check_metrics(folder, metrics, int(summary["epochs"]))
        row = _run_row(folder, summary)
        run_rows.append(row)
        keys = pd.DataFrame({k: [row[k]] * len(metrics) for k in EPOCH_KEYS},
                            index=metrics.index)
        epoch_frames.append(pd.concat([keys, metrics], axis=1))
        if gradients_csv is not None:
            grads = _read_gradient_rows(folder, int(summary["epochs"]))
            gradient_frames.append(grads.assign(**{k: row[k] for k in EPOCH_KEYS}))
    _check_unique(run_rows)
    runs = _ordered_columns(pd.DataFrame(run_rows), RUN_COLUMNS)
    runs = runs.sort_values(list(ROW_ORDER), kind="stable").reset_index(drop=True)
    epochs = _ordered_columns(pd.concat(epoch_frames, ignore_index=True),
                              EPOCH_KEYS + METRICS_COLUMNS)
    epochs = epochs.sort_values([*ROW_ORDER, "epoch"], kind="stable").reset_index(drop=True)
    _write_csv(runs, Path(runs_csv))
    _write_csv(epochs, Path(epochs_csv))
    log.info("aggregated %d run(s), %d epoch row(s) -> %s, %s", len(runs), len(epochs),
             runs_csv, epochs_csv)
    if gradients_csv is not None:
        columns = [*EPOCH_KEYS, *GRADIENT_COLUMNS]
        present = [frame[columns] for frame in gradient_frames if not frame.empty]
        grads = (pd.concat(present, ignore_index=True) if present
                 else pd.DataFrame(columns=columns))
        grads = grads.sort_values([*ROW_ORDER, "epoch", "block"], kind="stable")
        _write_csv(grads, Path(gradients_csv))
        without = sum(frame.empty for frame in gradient_frames)
        log.info("%d gradient row(s) -> %s%s", len(grads), gradients_csv,
                 f" ({without} run(s) without gradients.csv)" if without else "")
    return runs, epochs


# ---------------------------------------------------------------------------------------------
# runs.csv, epochs.csv -> checked DataFrames
# ---------------------------------------------------------------------------------------------

def _line(frame: pd.DataFrame, index: Any) -> int:
    """The file line of a data row (the header is line 1)."""
    return int(frame.index.get_loc(index)) + 2


def _read_table(path: str | Path, needed: Sequence[str], numbers: Sequence[str],
                allow_empty: bool = False) -> pd.DataFrame:
    """A CSV written by aggregate(): text columns stay text (a variant named '1' or 'NA' too),
    `numbers` must be numbers (best_val_error may be empty)."""
    path = Path(path)
    if not path.is_file():
        raise SdnetError(f"{path} does not exist (run `sdnet report aggregate` first)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SdnetError(f"cannot parse {path}: {err}") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SdnetError(f"{path} lacks column(s) {', '.join(missing)}")
    if frame.empty and not allow_empty:
        raise SdnetError(f"{path} has no rows")
    for column in frame.columns:
        if column in TEXT_COLUMNS:
            continue
        parsed = pd.to_numeric(frame[column].where(frame[column] != ""), errors="coerce")
        bad = parsed.isna() & ((frame[column] != "") | (column not in NULLABLE_FIELDS))
        if column in numbers and bad.any():
            index = bad.idxmax()
            raise SdnetError(f"{path} line {_line(frame, index)}: {column} is not a number "
                             f"({frame.at[index, column]!r})")
        if column in numbers or (parsed.notna() | (frame[column] == "")).all():
            frame[column] = parsed  # a column of numbers (a setting such as lr) stays numeric
    return frame


def _check_runs(path: Path, frame: pd.DataFrame) -> None:
    """One row per run; every survival rule known to sdnet.spec."""
    seen: dict[tuple, int] = {}
    for index, key in zip(frame.index, frame[list(RUN_KEYS)].itertuples(index=False)):
        line = _line(frame, index)
        if key in seen:
            raise SdnetError(f"{path} line {line}: run ({_describe_run(key)}) already appears "
                             f"at line {seen[key]}")
        seen[key] = line
    unknown = ~frame.survival.isin(spec.SURVIVAL_RULES)
    if unknown.any():
        index = unknown.idxmax()
        raise SdnetError(f"{path} line {_line(frame, index)}: variant "
                         f"{frame.at[index, 'variant']!r} has unknown survival rule "
                         f"{frame.at[index, 'survival']!r} (known: "
                         f"{', '.join(spec.SURVIVAL_RULES)})")


def _augment_column(path: Path, frame: pd.DataFrame) -> pd.Series:
    """augment as bools; missing or empty = the data set's default."""
    words = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
    values = []
    raw = frame["augment"] if "augment" in frame.columns else pd.Series("", index=frame.index)
    for index, value, dataset in zip(frame.index, raw.astype(str), frame.dataset):
        if value.strip() == "":
            values.append(default_augment(dataset))
        elif value.strip().lower() in words:
            values.append(words[value.strip().lower()])
        else:
            raise SdnetError(f"{path} line {_line(frame, index)}: augment is not true or false "
                             f"({value!r})")
    return pd.Series(values, index=frame.index, dtype=bool)


def _with_network(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """A runs.csv from before networks had names: `network` from its depth and arch."""
    if "network" in frame.columns:
        return frame
    try:
        names = [networks.network_name(int(d), a) for d, a in zip(frame.depth, frame.arch)]
    except networks.SpecError as err:
        raise SdnetError(f"{path}: {err}") from None
    frame.insert(1, "network", names)
    return frame


def read_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv as written by aggregate(), checked: one line naming file and line if not."""
    frame = _with_network(Path(path), _read_table(path, RUNS_NEEDED, RUNS_NUMBERS))
    _check_runs(Path(path), frame)
    frame["augment"] = _augment_column(Path(path), frame)
    return frame


def read_epochs(path: str | Path) -> pd.DataFrame:
    """epochs.csv as written by aggregate() (one from before network names has no `network`
    column: `sdnet.report.figures` takes it from runs.csv, matching on the depth)."""
    return _read_table(path, EPOCHS_NEEDED, EPOCHS_NUMBERS)


def read_gradients(path: str | Path) -> pd.DataFrame:
    """gradients.csv as written by aggregate() (it may have no rows: runs from before it);
    mean_abs_grad is NaN where a block never ran in an epoch."""
    return _read_table(path, EPOCH_KEYS + GRADIENT_COLUMNS, GRADIENTS_NUMBERS, allow_empty=True)
