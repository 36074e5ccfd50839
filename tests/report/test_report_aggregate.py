"""sdnet.report.aggregate: run folders (the sdnet.train.loop contract) -> runs.csv, epochs.csv,
gradients.csv, and reading them back: a runs.csv a user broke is one line naming the file and
line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from report_runs import (
    BLOCKS,
    ERRORS,
    METRICS_HEADER,
    aggregated_study,
    grad,
    make_run,
    runs_row,
    write_runs_csv,
)

from sdnet import report
from sdnet.errors import SdnetError


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return aggregated_study(tmp_path_factory.mktemp("study"))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"variant": str, "dataset": str})


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
    assert stats.loc[("cinic10", 20, "baseline")].tolist() == pytest.approx([13.0, 2 ** 0.5])


def test_runs_csv_flattens_settings_and_final_numbers(study: SimpleNamespace) -> None:
    runs = read_csv(study.runs_csv)
    for column in ("variant", "dataset", "network", "depth", "arch", "seed", "survival", "p_last",
                   "augment",
                   "epochs", "best_epoch", "best_val_error", "test_error_at_best",
                   "final_test_error", "train_seconds", "mean_epoch_seconds", "parameters",
                   "device", "mean_blocks_computed", "run_dir", "batch_size", "milestones", "lr",
                   "version_torch"):
        assert column in runs.columns, column
    assert list(runs.columns[:9]) == ["dataset", "network", "depth", "arch", "variant", "seed",
                                      "survival", "p_last", "augment"]
    assert set(zip(runs.network, runs.arch)) == {("resnet110", "cifar"), ("resnet20", "cifar")}
    first = runs.iloc[0]
    assert first.milestones == "[250,375]"
    assert first.device == "cuda:0" and first.setting_device == "auto"  # used vs asked
    assert "survival_probabilities" not in runs.columns
    assert set(runs.run_dir) == {str(f) for f in study.folders}


def test_epochs_csv_one_row_per_run_epoch(study: SimpleNamespace) -> None:
    epochs = read_csv(study.epochs_csv)
    # The runs' metrics.csv lack the top-5 columns (an older sdnet): read, left empty.
    assert list(epochs.columns) == ["dataset", "network", "depth", "variant", "seed",
                                    *METRICS_HEADER, "val_error_top5", "test_error_top5"]
    assert epochs.test_error_top5.isna().all()
    assert len(epochs) == 11 * 4
    keys = list(zip(epochs.dataset, epochs.depth, epochs.variant, epochs.seed, epochs.epoch))
    assert keys == sorted(keys)
    one = epochs[(epochs.variant == "stochastic") & (epochs.dataset == "cifar10")
                 & (epochs.seed == 1)]
    assert one.test_error.tolist() == pytest.approx([5.4 + 40, 5.4 + 20, 5.4, 5.4 + 10])


def test_gradients_csv_one_row_per_run_epoch_block(study: SimpleNamespace) -> None:
    grads = report.read_gradients(study.gradients_csv)
    assert list(grads.columns) == ["dataset", "network", "depth", "variant", "seed", "epoch",
                                   "block", "mean_abs_grad", "active_steps"]
    assert len(grads) == 11 * 4 * BLOCKS
    keys = list(zip(grads.dataset, grads.depth, grads.network, grads.variant, grads.seed,
                    grads.epoch, grads.block))
    assert keys == sorted(keys)
    one = grads[(grads.variant == "baseline") & (grads.dataset == "cifar10") & (grads.seed == 2)
                & (grads.epoch == 3)]
    assert one.mean_abs_grad.tolist() == pytest.approx([grad(b, 3, 2) for b in (1, 2, 3)])
    never = grads[grads.variant == "uniform_p05"]  # its last block never ran: empty, steps 0
    assert never[never.block == 3].mean_abs_grad.isna().all()
    assert (never[never.block == 3].active_steps == 0).all()
    text = study.gradients_csv.read_text()
    assert "nan" not in text.lower() and ",,0\n" in text


def test_gradient_files_are_checked_and_old_runs_have_none(tmp_path: Path) -> None:
    old = make_run(tmp_path / "runs", variant="baseline", gradients=False)
    new = make_run(tmp_path / "runs", variant="stochastic")
    out = [tmp_path / name for name in ("runs.csv", "epochs.csv", "gradients.csv")]
    report.aggregate([old, new], *out)
    grads = report.read_gradients(out[2])
    assert set(grads.variant) == {"stochastic"}
    epochs = report.read_epochs(out[1])
    assert epochs[epochs.variant == "baseline"].grad_first_conv.isna().all()
    assert (epochs[epochs.variant == "stochastic"].grad_first_conv > 0).all()
    path = new / "gradients.csv"
    path.write_text(path.read_text().replace(",10\n", ",0\n", 1))  # a mean without steps
    with pytest.raises(SdnetError, match=r"stochastic/seed0 is incomplete or malformed: .*"
                                         r"gradients.csv: mean_abs_grad must be given exactly"):
        report.aggregate([old, new], *(tmp_path / f"x{p.name}" for p in out))
    path.write_text("epoch,block,mean_abs_grad,active_steps\n1,1,abc,3\n")
    with pytest.raises(SdnetError, match="gradients.csv is malformed"):
        report.aggregate([new], *(tmp_path / f"y{p.name}" for p in out))
    assert not list(tmp_path.glob("[xy]*.csv"))  # nothing written


def test_aggregate_is_deterministic_whatever_the_input_order(study: SimpleNamespace,
                                                              tmp_path: Path) -> None:
    summaries = [f / "summary.json" for f in study.folders]  # the workflow passes these
    report.aggregate(summaries, tmp_path / "runs.csv", tmp_path / "epochs.csv",
                     tmp_path / "gradients.csv")
    assert (tmp_path / "runs.csv").read_bytes() == study.runs_csv.read_bytes()
    assert (tmp_path / "epochs.csv").read_bytes() == study.epochs_csv.read_bytes()
    assert (tmp_path / "gradients.csv").read_bytes() == study.gradients_csv.read_bytes()


def test_augment_missing_or_null_is_the_data_sets_default(tmp_path: Path) -> None:
    folders = [make_run(tmp_path / "runs", dataset="svhn", depth=152, augment=None),
               make_run(tmp_path / "runs", dataset="cifar100", augment=None),
               make_run(tmp_path / "runs", dataset="cifar10", augment=False)]
    report.aggregate(folders, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    back = report.read_runs(tmp_path / "runs.csv")
    assert dict(zip(back.dataset, back.augment)) == {"cifar10": False, "cifar100": True,
                                                     "svhn": False}
    frame = pd.read_csv(tmp_path / "runs.csv").drop(columns="augment")  # a pre-augment runs.csv
    frame.to_csv(tmp_path / "old.csv", index=False)
    old = report.read_runs(tmp_path / "old.csv")
    assert dict(zip(old.dataset, old.augment)) == {"cifar10": True, "cifar100": True,
                                                   "svhn": False}


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
    (_bad_json, "not valid JSON"), (_drop_column, "lacks column(s) test_error"),
    (_fewer_epochs, "3 epoch row(s)"), (_drop_field, "lacks test_error_at_best"),
    (_text_in_numbers, "malformed"),
])
def test_incomplete_or_malformed_run_folder_is_named(tmp_path: Path, damage, words: str) -> None:
    good = make_run(tmp_path / "runs", variant="baseline")
    bad = make_run(tmp_path / "runs", variant="stochastic")
    damage(bad)
    with pytest.raises(SdnetError) as err:
        report.aggregate([good, bad], tmp_path / "runs.csv", tmp_path / "epochs.csv")
    assert str(bad) in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)
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
# a runs.csv broken by hand: one line naming the file and line, nothing written
# --------------------------------------------------------------------------------------------

def _good_rows() -> list[dict]:
    return [runs_row(seed=s, error=6.0 + 0.1 * s) for s in range(3)] + \
        [runs_row(variant="stochastic", seed=s, error=5.0 + 0.1 * s, survival="linear",
                  p_last=0.5) for s in range(3)]


def _duplicate(rows: list[dict]) -> None:
    rows.append(dict(rows[1]))


def _text_error(rows: list[dict]) -> None:
    rows[4]["test_error_at_best"] = "5.3%"


def _unknown_rule(rows: list[dict]) -> None:
    for row in rows[3:]:
        row["survival"] = "exponential"


def _empty_error(rows: list[dict]) -> None:
    rows[2]["test_error_at_best"] = ""


@pytest.mark.parametrize("damage, words", [
    (_duplicate, ("line 8: run (dataset=cifar10, network=resnet110, variant=baseline, seed=1) "
                  "already appears at line 3")),
    (_text_error, "line 6: test_error_at_best is not a number ('5.3%')"),
    (_unknown_rule, "line 5: variant 'stochastic' has unknown survival rule 'exponential'"),
    (_empty_error, "line 4: test_error_at_best is not a number ('')"),
])
def test_broken_runs_csv_is_one_line_and_nothing_is_written(tmp_path: Path, capsys, damage,
                                                            words: str) -> None:
    from sdnet import cli

    rows = _good_rows()
    damage(rows)
    runs_csv = write_runs_csv(tmp_path / "runs.csv", rows)
    with pytest.raises(SdnetError) as err:
        report.read_runs(runs_csv)
    assert str(err.value).startswith(f"{runs_csv} {words}")
    for command in (["tables", "--runs", str(runs_csv), "--out-dir", str(tmp_path / "t")],
                    ["compare", "--runs", str(runs_csv), "--out", str(tmp_path / "c.csv")],
                    ["p-last-figure", "--runs", str(runs_csv), "--out-dir", str(tmp_path / "f")]):
        assert cli.main(["report", *command]) == 2
        err_text = capsys.readouterr().err
        assert err_text.count("\n") == 1 and str(runs_csv) in err_text and words in err_text
    assert not [p for p in tmp_path.rglob("*") if p != runs_csv]  # nothing written


def test_good_runs_csv_reads_back_typed(tmp_path: Path) -> None:
    runs = report.read_runs(write_runs_csv(tmp_path / "runs.csv", _good_rows()))
    assert runs.test_error_at_best.dtype.kind == "f" and runs.depth.dtype.kind == "i"
    assert runs.augment.dtype == bool and runs.variant.tolist()[0] == "baseline"


# --------------------------------------------------------------------------------------------
# networks: a run's family is part of its identity
# --------------------------------------------------------------------------------------------

def test_two_families_at_one_depth_are_two_runs(tmp_path: Path) -> None:
    """A CIFAR ResNet-50 and the bottleneck ResNet-50 of one seed: two folders, two rows."""
    folders = [make_run(tmp_path / "runs", depth=50, arch=arch) for arch in ("bottleneck", "cifar")]
    folders.append(make_run(tmp_path / "runs", depth=110, arch="preact"))
    assert [f.relative_to(tmp_path / "runs").parts[1] for f in folders] == [
        "resnet50", "cifar-resnet50", "preact-resnet110"]
    runs, epochs = report.aggregate(folders, tmp_path / "runs.csv", tmp_path / "epochs.csv")
    assert list(zip(runs.network, runs.depth, runs.arch)) == [
        ("cifar-resnet50", 50, "cifar"), ("resnet50", 50, "bottleneck"),
        ("preact-resnet110", 110, "preact")]
    assert sorted(set(epochs.network)) == ["cifar-resnet50", "preact-resnet110", "resnet50"]
    back = report.read_runs(tmp_path / "runs.csv")
    assert back.network.tolist() == runs.network.tolist()


def test_a_runs_csv_from_before_network_names_reads_back(tmp_path: Path) -> None:
    rows = _good_rows()
    for row in rows:
        del row["network"]
    rows[0]["depth"], rows[0]["arch"] = 50, "cifar"
    runs = report.read_runs(write_runs_csv(tmp_path / "runs.csv", rows))
    assert runs.network.tolist() == ["cifar-resnet50"] + ["resnet110"] * 5
