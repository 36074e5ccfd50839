"""Hand-made inputs for the tests/test_report_*.py files (not a test module itself).

`make_run` writes a finished run folder exactly as sdnet.train.loop does (the contract in
docs/DESIGN.md); `write_runs_csv` writes a runs.csv directly, for the statistics and table
tests that need many variants but no folders; `compile_latex` runs pdflatex on a table in a
plain one-column article and returns its log.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from sdnet import layout, networks

REPO = Path(__file__).resolve().parents[1]
METRICS_HEADER = ["epoch", "lr", "train_loss", "train_error", "val_error", "test_error",
                  "epoch_seconds", "blocks_computed", "grad_first_conv"]
GRADIENTS_HEADER = ["epoch", "block", "mean_abs_grad", "active_steps"]
BLOCKS, STEPS = 3, 10  # residual blocks and steps per epoch of a hand-made run
VARIANTS = {  # variant -> (survival, p_last), as config.yaml names them
    "baseline": ("none", 0.5),
    "stochastic": ("linear", 0.5),
    "uniform_p05": ("uniform", 0.5),
}


def make_run(root: Path, *, dataset: str = "cifar10", depth: int = 110, variant: str = "baseline",
             seed: int = 0, test_error_at_best: float = 6.0, epochs: int = 4,
             epoch_seconds: float = 75.0, val: bool = True, arch: str | None = None,
             survival: str | None = None, p_last: float | None = None,
             augment: bool | None = True, gradients: bool = True,
             milestones: tuple[int, ...] = ()) -> Path:
    """Write one finished run folder exactly as sdnet.train.loop does; return the folder.

    Gradient strength: block b's mean |grad| at epoch e is grad(b, e) below, times 1.5 for a
    stochastic variant; the last block never runs with survival `uniform`. `gradients=False`
    writes a run from before sdnet recorded them (no column, no gradients.csv). The lr is
    divided by 10 after each of `milestones`."""
    known = VARIANTS.get(variant, ("linear", 0.5))
    survival = survival or known[0]
    p_last = known[1] if p_last is None else p_last
    arch = arch or networks.default_arch(depth)
    folder = root / layout.run_key(dataset, networks.network_name(depth, arch), variant, seed)
    folder.mkdir(parents=True)
    best_epoch = epochs - 1 if epochs > 1 and val else epochs
    rows, grads = [], []
    factor = 1.0 if survival == "none" else 1.5
    for epoch in range(1, epochs + 1):
        test = test_error_at_best if epoch == best_epoch else test_error_at_best + 40.0 / epoch
        lr = 0.1 * 0.1 ** sum(epoch > m for m in milestones)
        blocks = [[epoch, b, factor * grad(b, epoch, seed), STEPS] for b in range(1, BLOCKS + 1)]
        if survival == "uniform":
            blocks[-1][2:] = ["", 0]
        grads += blocks
        rows.append([epoch, lr, 2.0 / epoch, test + 1.0, (test - 0.5) if val else "", test,
                     epoch_seconds + epoch * 0.01, 1.0 if survival == "none" else 0.75,
                     blocks[0][2]])
    with open(folder / "metrics.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(METRICS_HEADER if gradients else METRICS_HEADER[:-1])
        writer.writerows(rows if gradients else [r[:-1] for r in rows])
    if gradients:
        with open(folder / "gradients.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(GRADIENTS_HEADER)
            writer.writerows(grads)
    final = rows[-1][5]
    settings = {"data": f"resources/data/{dataset}", "dataset": dataset, "depth": depth,
                "arch": None, "shortcut": "A", "survival": survival, "p_last": p_last,
                "variant": variant, "seed": seed, "epochs": epochs, "batch_size": 128, "lr": 0.1,
                "milestones": [250, 375], "gamma": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                "nesterov": True, "warmup_epochs": 0, "limit_train": None, "device": "auto",
                "amp": True, "channels_last": True, "augment": augment}
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


def grad(block: int, epoch: int, seed: int = 0) -> float:
    """A hand-made run's mean |grad| of a block at an epoch (constant depth): shrinking with
    depth and epoch, a little different per seed."""
    return 0.01 / (block * epoch) * (1.0 + 0.1 * seed)


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
    """The run folders of ERRORS."""
    folders = []
    for (dataset, depth, variant), errors in ERRORS.items():
        for seed, error in enumerate(errors):
            folders.append(make_run(root, dataset=dataset, depth=depth, variant=variant, seed=seed,
                                    test_error_at_best=error, epoch_seconds=SECONDS[variant]))
    return folders


def aggregated_study(root: Path) -> SimpleNamespace:
    """make_study under root/runs, aggregated into root/metrics/{runs,epochs}.csv."""
    from sdnet import report

    folders = make_study(root / "runs")
    metrics = root / "metrics"
    runs_csv, epochs_csv = metrics / "runs.csv", metrics / "epochs.csv"
    gradients_csv = metrics / "gradients.csv"
    runs, epochs = report.aggregate(list(reversed(folders)), runs_csv, epochs_csv, gradients_csv)
    return SimpleNamespace(root=root, folders=folders, runs_csv=runs_csv, epochs_csv=epochs_csv,
                           gradients_csv=gradients_csv, runs=runs, epochs=epochs)


RUNS_HEADER = ["dataset", "network", "depth", "arch", "variant", "seed", "survival", "p_last",
               "augment",
               "epochs", "best_epoch", "best_val_error", "test_error_at_best",
               "final_test_error", "train_seconds", "mean_epoch_seconds", "device",
               "mean_blocks_computed"]


def runs_row(dataset: str = "cifar10", depth: int = 110, variant: str = "baseline",
             seed: int = 0, error: float = 6.0, survival: str = "none", p_last: float = 1.0,
             augment: bool = True, seconds: float = 7500.0, arch: str | None = None,
             **extra) -> dict:
    """One runs.csv row as aggregate() writes it (the columns the report reads)."""
    arch = arch or networks.default_arch(depth)
    row = {"dataset": dataset, "network": networks.network_name(depth, arch), "depth": depth,
           "arch": arch, "variant": variant,
           "seed": seed, "survival": survival, "p_last": p_last, "augment": augment,
           "epochs": 100, "best_epoch": 90, "best_val_error": error - 0.5,
           "test_error_at_best": error, "final_test_error": error + 0.1,
           "train_seconds": seconds, "mean_epoch_seconds": seconds / 100, "device": "cuda:0",
           "mean_blocks_computed": 1.0 if survival == "none" else 0.75}
    row.update(extra)
    return row


def write_runs_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sweep_rows(variants: int, seeds: int = 3, dataset: str = "cifar10",
               depth: int = 110) -> list[dict]:
    """runs.csv rows of a p_L sweep: constant depth plus variants-1 linear-decay variants named
    as the workflow names sweep expansions (`linear-p_last0.3`)."""
    rows = [runs_row(dataset, depth, "baseline", s, 6.4 + 0.1 * s) for s in range(seeds)]
    for i in range(variants - 1):
        p_last = round(1.0 - 0.1 * (i + 1), 1) if variants <= 10 else round(0.95 - 0.05 * i, 2)
        name = f"linear-p_last{p_last:g}"
        rows += [runs_row(dataset, depth, name, s, 5.0 + i * 0.2 + 0.15 * s, "linear", p_last,
                          seconds=7500.0 * (0.6 + 0.4 * p_last)) for s in range(seeds)]
    return rows


def markdown_table(text: str) -> list[list[str]]:
    """Rows of the one github-style table in `text`, checked for a consistent column count."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert len(rows) >= 3 and all(set(c) <= set("-:") for c in rows[1])
    assert len({len(r) for r in rows}) == 1, "ragged Markdown table"
    return [rows[0]] + rows[2:]


def compile_latex(tables: list[Path], workdir: Path) -> str:
    """pdflatex a plain one-column article with booktabs and amsmath holding `tables`; the log.

    Fails the test when pdflatex is missing in CI (skips elsewhere) or when it fails.
    """
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing (run `make system-deps`)")
        pytest.skip("pdflatex not installed (tests/system-deps.sh installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i, table in enumerate(tables):
        shutil.copy(table, workdir / f"t{i}.tex")
        inputs.append(f"\\input{{t{i}.tex}}\n\\clearpage\n")
    (workdir / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amsmath}\n"
        "\\begin{document}\n" + "".join(inputs) + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=workdir, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (workdir / "doc.pdf").stat().st_size > 1000
    return (workdir / "doc.log").read_text(errors="replace")
