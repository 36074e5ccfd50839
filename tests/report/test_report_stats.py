"""sdnet.report.stats: Welch's t-test and interval (against scipy and by hand), Holm's correction
(a worked example), the comparisons against constant depth and comparisons.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from report_runs import runs_row, sweep_rows, write_runs_csv
from scipy import stats as scipy_stats

from sdnet import report
from sdnet.report import stats

HAND_MADE = [  # (a, b): unequal sizes and spreads, as seeds give them
    ([5.2, 5.4, 5.3], [6.5, 6.3, 6.7]),
    ([5.21, 5.62, 4.98, 5.35, 5.05], [6.41, 6.02, 6.77]),
    ([13.0, 13.5], [12.0, 14.0]),
    ([24.9, 25.3, 24.7, 25.1], [27.2, 27.9]),
]


@pytest.mark.parametrize("a, b", HAND_MADE)
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    result = stats.welch(a, b)
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    low, high = expected.confidence_interval(0.95)
    assert result.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert result.p_value == pytest.approx(expected.pvalue)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    assert result.ci_low < result.diff < result.ci_high


def test_welch_by_hand() -> None:
    """a = 1, 2, 3; b = 4, 5, 6: both variances 1, so se = sqrt(1/3 + 1/3), Welch df = 4.

    t = -3 / sqrt(2/3) = -3.674; with 4 degrees of freedom the two-sided p-value has the closed
    form 1 - 3/2 u + 1/2 u^3, u = |t| / sqrt(t^2 + 4); the 97.5 % quantile of t_4 is 2.776445
    (any t table), so the interval is -3 +- 2.776445 sqrt(2/3) = [-5.2670, -0.7330].
    """
    result = stats.welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    t = -3.0 / math.sqrt(2.0 / 3.0)
    u = abs(t) / math.sqrt(t * t + 4.0)
    assert result.diff == pytest.approx(-3.0)
    assert result.p_value == pytest.approx(1 - 1.5 * u + 0.5 * u ** 3, rel=1e-9)
    assert result.p_value == pytest.approx(0.021312, abs=1e-6)
    half = 2.776445 * math.sqrt(2.0 / 3.0)
    assert result.ci_low == pytest.approx(-3.0 - half, abs=1e-5)
    assert result.ci_high == pytest.approx(-3.0 + half, abs=1e-5)
    assert (round(result.ci_low, 4), round(result.ci_high, 4)) == (-5.2670, -0.7330)


def test_welch_one_seed_and_zero_variance_give_the_difference_only() -> None:
    one = stats.welch([5.9], [6.5, 6.3, 6.7])
    assert one.diff == pytest.approx(-0.6) and one.p_value is one.ci_low is one.ci_high is None
    same = stats.welch([5.0, 5.0, 5.0], [5.0, 5.0])
    assert same.diff == 0.0 and same.p_value is None and same.ci_low is None
    flat = stats.welch([5.0, 5.0], [6.0, 6.0])  # no spread on both sides: undefined test
    assert flat.diff == pytest.approx(-1.0) and flat.p_value is None
    half = stats.welch([5.0, 5.0, 5.0], [6.0, 6.2, 5.8])  # spread on one side: defined
    assert half.p_value is not None and half.ci_low < -1.0 < half.ci_high


def test_holm_worked_example() -> None:
    """m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x = 0.02, 0.03, 0.06, 0.04, then
    monotone (the last becomes 0.06), back in the given order; None is not counted."""
    assert stats.holm([0.01, None, 0.04, 0.03, 0.005]) == pytest.approx(
        [0.03, None, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.2]) == [0.2] and stats.holm([]) == [] and stats.holm([None]) == [None]


def _rows() -> list[dict]:
    rows = [runs_row(seed=s, error=e) for s, e in enumerate([6.5, 6.3, 6.7])]
    rows += [runs_row(variant="stochastic", seed=s, error=e, survival="linear", p_last=0.5)
             for s, e in enumerate([5.2, 5.4, 5.3])]
    rows += [runs_row(variant="uniform", seed=0, error=5.9, survival="uniform", p_last=0.5)]
    # CIFAR-100 without augmentation: identical errors on both sides
    rows += [runs_row("cifar100", variant=v, seed=s, error=40.0, survival=r, p_last=p,
                      augment=False) for v, r, p in (("baseline", "none", 1.0),
                                                    ("stochastic", "linear", 0.5))
             for s in range(3)]
    # SVHN: no constant-depth variant, so nothing to compare
    rows += [runs_row("svhn", 152, "stochastic", s, 1.8, "linear", 0.5, augment=False)
             for s in range(2)]
    return rows


def test_comparisons_against_constant_depth(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", _rows())
    frame = report.write_comparisons(runs_csv, tmp_path / "comparisons.csv")
    assert tuple(frame.columns) == stats.COMPARISON_COLUMNS
    keyed = {(r.dataset, r.variant): r for r in frame.itertuples()}
    assert set(keyed) == {("cifar10", "stochastic"), ("cifar10", "uniform"),
                          ("cifar100", "stochastic")}
    stoch = keyed[("cifar10", "stochastic")]
    assert (stoch.reference, stoch.n, stoch.n_reference) == ("baseline", 3, 3)
    assert (stoch.mean, stoch.mean_reference, stoch.diff) == pytest.approx((5.3, 6.5, -1.2))
    direct = stats.welch([5.2, 5.4, 5.3], [6.5, 6.3, 6.7])
    assert (stoch.ci_low, stoch.ci_high, stoch.p_value) == pytest.approx(
        (direct.ci_low, direct.ci_high, direct.p_value))
    assert stoch.p_holm == pytest.approx(direct.p_value)  # the only tested comparison
    uniform = keyed[("cifar10", "uniform")]
    assert uniform.diff == pytest.approx(-0.6) and math.isnan(uniform.p_value)
    flat = keyed[("cifar100", "stochastic")]
    assert flat.diff == 0.0 and math.isnan(flat.p_value) and math.isnan(flat.p_holm)


def test_comparisons_csv_has_exact_columns_and_empty_cells_not_nan(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", _rows())
    report.write_comparisons(runs_csv, tmp_path / "comparisons.csv")
    text = (tmp_path / "comparisons.csv").read_text()
    assert "nan" not in text.lower()
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == list(stats.COMPARISON_COLUMNS)
    uniform = next(r for r in rows if r["variant"] == "uniform")
    assert uniform["diff"] and not uniform["ci_low"] and not uniform["p_value"]
    assert uniform["n"] == "1" and uniform["n_reference"] == "3"
    back = report.read_comparisons(tmp_path / "comparisons.csv")
    assert len(back) == 3 and back.p_value.notna().sum() == 1


def test_holm_runs_over_every_comparison_of_the_file(tmp_path: Path) -> None:
    runs_csv = write_runs_csv(tmp_path / "runs.csv", sweep_rows(5) + sweep_rows(4, dataset="cifar100"))
    frame = report.write_comparisons(runs_csv, tmp_path / "comparisons.csv")
    assert len(frame) == 4 + 3
    assert frame.p_holm.tolist() == pytest.approx(stats.holm(frame.p_value.tolist()))
    assert (frame.p_holm >= frame.p_value).all()


def test_no_constant_depth_variant_gives_a_header_only(tmp_path: Path) -> None:
    rows = [runs_row(variant=f"linear-p_last{p}", seed=s, survival="linear", p_last=p)
            for p in (0.2, 0.5) for s in range(2)]
    frame = report.write_comparisons(write_runs_csv(tmp_path / "runs.csv", rows),
                                     tmp_path / "comparisons.csv")
    assert frame.empty
    assert (tmp_path / "comparisons.csv").read_text().strip() == ",".join(
        stats.COMPARISON_COLUMNS)


def test_reference_prefers_baseline_then_name(tmp_path: Path) -> None:
    rows = [runs_row(variant=v, seed=s) for v in ("const_b", "const_a") for s in range(2)]
    rows += [runs_row(variant="stochastic", seed=s, survival="linear", p_last=0.5)
             for s in range(2)]
    frame = report.comparisons(report.read_runs(write_runs_csv(tmp_path / "runs.csv", rows)))
    assert dict(zip(frame.variant, frame.reference)) == {"const_b": "const_a",
                                                         "stochastic": "const_a"}


def test_cli_compare_writes_the_file(tmp_path: Path) -> None:
    from sdnet import cli

    runs_csv = write_runs_csv(tmp_path / "runs.csv", _rows())
    assert cli.main(["report", "compare", "--runs", str(runs_csv), "--out",
                     str(tmp_path / "out" / "comparisons.csv")]) == 0
    assert len(report.read_comparisons(tmp_path / "out" / "comparisons.csv")) == 3
