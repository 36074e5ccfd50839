"""Is a variant's gain over constant depth real? Welch's t-test across seeds, Holm-corrected.

For every report row (data set, network, augmentation) with a constant-depth variant, every
other variant is compared with it on the test error at the best-validation epoch (one value per
seed): `diff = mean - mean_reference` in percentage points, Welch's two-sided t-test (unequal
variances, `scipy.stats.ttest_ind(equal_var=False)`) and its 95 % confidence interval for the
difference, and Holm's step-down correction over all comparisons of the file. With fewer than two
seeds on either side, or no spread on both sides, only the difference is defined: the test
columns stay empty (never NaN).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sdnet import networks
from sdnet.atomic import atomic_open
from sdnet.errors import SdnetError
from sdnet.report import names
from sdnet.report.aggregate import read_runs

log = logging.getLogger(__name__)

COMPARISON_COLUMNS = ("dataset", "network", "depth", "variant", "reference", "n", "n_reference",
                      "mean", "mean_reference", "diff", "ci_low", "ci_high", "p_value", "p_holm")
NUMBER_COLUMNS = ("mean", "mean_reference", "diff", "ci_low", "ci_high", "p_value", "p_holm")
# comparisons.csv as written before networks had names (read as the depth's own family's).
OLD_COLUMNS = tuple(c for c in COMPARISON_COLUMNS if c != "network")
CONFIDENCE = 0.95
ALPHA = 0.05  # the tables mark comparisons with p_holm below this
BASELINE_NAME = "baseline"  # preferred reference when a row has several constant-depth variants


@dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(a) - mean(b); None where the data do not define it."""

    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Welch:
    """Difference of means with Welch's two-sided test and its confidence interval.

    Fewer than two values on a side, or zero variance on both, leave the test undefined.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(x) or not len(y):
        raise SdnetError("welch() needs at least one value on each side")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return Welch(diff, None, None, None)
    with warnings.catch_warnings():  # one side without spread is fine for Welch's test
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        result = stats.ttest_ind(x, y, equal_var=False)
        low, high = result.confidence_interval(confidence)
    return Welch(diff, float(low), float(high), float(result.pvalue))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the given order; None stays None (not counted).

    Sorted ascending, the i-th of m gets max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(present), 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def reference_variant(cells: pd.DataFrame) -> str | None:
    """The row's constant-depth variant (survival none): 'baseline' if present, else by name."""
    constant = sorted(set(cells[cells.survival == "none"].variant))
    if not constant:
        return None
    return BASELINE_NAME if BASELINE_NAME in constant else constant[0]


def comparisons(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per compared variant with COMPARISON_COLUMNS (empty test cells are NaN here)."""
    records = []
    order = names.variant_order(runs)
    for row in names.rows(runs):
        cells = names.in_row(runs, row)
        reference = reference_variant(cells)
        if reference is None:
            continue
        base = cells[cells.variant == reference].test_error_at_best.to_numpy(dtype=float)
        for variant in order:
            values = cells[cells.variant == variant].test_error_at_best.to_numpy(dtype=float)
            if variant == reference or not len(values):
                continue
            test = welch(values, base)
            records.append({"dataset": row.dataset, "network": row.network,
                            "depth": row.depth, "variant": variant,
                            "reference": reference, "n": len(values), "n_reference": len(base),
                            "mean": float(values.mean()), "mean_reference": float(base.mean()),
                            "diff": test.diff, "ci_low": test.ci_low, "ci_high": test.ci_high,
                            "p_value": test.p_value})
    frame = pd.DataFrame(records, columns=list(COMPARISON_COLUMNS[:-1]))
    frame["p_holm"] = holm([None if pd.isna(p) else float(p) for p in frame.p_value])
    return frame.astype({c: float for c in NUMBER_COLUMNS})


def significant(p_holm: float | None) -> bool:
    """Whether the tables mark this comparison."""
    return p_holm is not None and not pd.isna(p_holm) and p_holm < ALPHA


def write_comparisons(runs_csv: str | Path, out_csv: str | Path) -> pd.DataFrame:
    """runs.csv -> comparisons.csv (COMPARISON_COLUMNS; a header only when nothing compares)."""
    frame = comparisons(read_runs(runs_csv))
    with atomic_open(Path(out_csv), "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    log.info("wrote %d comparison(s) -> %s", len(frame), out_csv)
    return frame


def read_comparisons(path: str | Path) -> pd.DataFrame:
    """comparisons.csv as write_comparisons wrote it (empty cells NaN)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"dataset": str, "network": str, "variant": str,
                                         "reference": str},
                            keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise SdnetError(f"{path} does not exist (run `sdnet report compare` first)") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SdnetError(f"cannot parse {path}: {err}") from None
    if tuple(frame.columns) == OLD_COLUMNS:
        frame.insert(1, "network", [networks.network_name(int(d)) for d in frame.depth])
    if tuple(frame.columns) != COMPARISON_COLUMNS:
        raise SdnetError(f"{path} has columns {', '.join(frame.columns)}; expected "
                         f"{', '.join(COMPARISON_COLUMNS)}")
    return frame
