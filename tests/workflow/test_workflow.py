"""The Snakemake workflow, run for real in a temporary copy (Snakefile, config.yaml, config/,
workflow/, profiles/, slurm/): config validation, the DAG (what reruns when something
changes), the CPU demo end to end, and interrupted training that resumes.

Every snakemake call is bounded by `timeout -s INT -k 30 N`. The expensive cases use a one-run
subset of the demo config (written by the test as an extra --configfile).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sdnet.data.registry import dataset_names
from sdnet.train import runfolder

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("Snakefile", "config.yaml", "config", "workflow", "profiles", "slurm")
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO = ("--configfile", "config/demo.yaml")
DEMO_RUNS = 16  # 2 data sets x 2 depths x 2 variants x 2 seeds
TINY_EPOCHS = 6
TINY_RUN = "results/tiny/runs/cifar10/resnet8/stochastic/seed0"
TINY_LOG = "results/tiny/logs/train_run/cifar10/resnet8/stochastic/seed0.log"


# ------------------------------------------------------------------------------------ helpers


def copy_workflow(dest: Path) -> Path:
    """The workflow files only: no results/, resources/ or .snakemake/ of the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def command(args: tuple[str, ...], timeout: int) -> list[str]:
    return ["timeout", "-s", "INT", "-k", "30", str(timeout), str(SNAKEMAKE), *args]


def snakemake(workdir: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """One bounded snakemake call; stdout and stderr together in .stdout."""
    return subprocess.run(command(args, timeout), cwd=workdir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)


def run_ok(workdir: Path, *args: str, timeout: int = 120) -> str:
    result = snakemake(workdir, *args, timeout=timeout)
    assert result.returncode == 0, f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}"
    return result.stdout


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry) run: rule -> jobs ({} when nothing is to be done)."""
    counts: dict[str, int] = {}
    table = output.split("Job stats:", 1)
    if len(table) == 1:
        return counts
    for line in table[1].splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def dry_run(workdir: Path, *args: str) -> dict[str, int]:
    return job_counts(run_ok(workdir, *args, "-n", "--quiet", "rules"))


def write_overlay(workdir: Path, name: str, overlay: dict) -> str:
    (workdir / name).write_text(yaml.safe_dump(overlay))
    return name


def tiny_overlay(workdir: Path, name: str = "tiny.yaml", **train: object) -> str:
    """One run of the demo (cifar10, depth 8, stochastic, seed 0) under results/tiny."""
    return write_overlay(workdir, name, {
        "results_dir": "results/tiny",
        "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["stochastic"],
                       "seeds": [0]},
        "train": {"epochs": TINY_EPOCHS, **train},
    })


def interrupt_after_checkpoint(workdir: Path, run_dir: str, *args: str) -> None:
    """Start snakemake, press Ctrl-C (SIGINT to its process group) once the trainer has written
    its first checkpoint, and wait for everything to stop."""
    checkpoint = workdir / run_dir / "checkpoint.pt"
    proc = subprocess.Popen(command(args, 300), cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert checkpoint.exists(), f"no checkpoint was left:\n{output[-4000:]}"
    assert not (workdir / run_dir / "summary.json").exists(), (
        f"the run finished before the interrupt; make it longer:\n{output[-3000:]}")


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv rows without the wall-clock column."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"}
                for row in csv.DictReader(handle)]


def read_log_tail(path: Path, marker: str) -> str:
    """What the last training session wrote to an appended log (from the last `marker`)."""
    text = path.read_text()
    return text[text.rfind(marker):] if marker in text else text


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """The demo run end to end once: (workdir, output, seconds)."""
    wd = copy_workflow(tmp_path_factory.mktemp("demo") / "wf")
    start = time.monotonic()
    result = snakemake(wd, "--cores", "2", *DEMO, timeout=480)
    seconds = time.monotonic() - start
    assert result.returncode == 0, f"demo failed:\n{result.stdout[-6000:]}"
    return wd, result.stdout, seconds


# ------------------------------------------------------------------------------------ fast tests


def test_lint_is_clean(workdir: Path) -> None:
    output = run_ok(workdir, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in output


def test_full_grid_dry_run(workdir: Path) -> None:
    """config.yaml = the paper's grid: 40 GPU training jobs, the rest local rules."""
    output = run_ok(workdir, "-n", "-p")
    counts = job_counts(output)
    assert counts == {"download_dataset": 2, "prepare_dataset": 2, "train_run": 40,
                      "aggregate_metrics": 1, "compare_variants": 1, "plot_figures": 1,
                      "plot_gradients": 1, "render_tables": 1, "all": 1}
    # no p_L sweep: no error_vs_p_last; two depths but one p_L: no error_heatmap
    train = output.split("rule train_run:", 1)[1].split("rule ", 1)[0]
    assert "gpu=1" in train and "runtime=1440" in train and "mem_mb=16000" in train
    assert "--on-mismatch restart" in train and "--device auto" in train
    for flag in ("--epochs 500", "--batch-size 128", "--lr 0.1", "--milestones 250 375",
                 "--gamma 0.1", "--momentum 0.9", "--weight-decay 0.0001", "--nesterov"):
        assert flag in output


def test_one_table_builds_only_what_it_needs(workdir: Path) -> None:
    counts = dry_run(workdir, "results/tables/summary.tex")
    assert counts["render_tables"] == 1 and counts["train_run"] == 40
    assert "plot_figures" not in counts and "all" not in counts


HEAVY_IMPORT_PROBE = """
import builtins, sys, traceback
from pathlib import Path
here = str(Path.cwd())
culprits = []
real_import = builtins.__import__
def probe(name, *args, **kwargs):
    if name.split(".")[0] in ("torch", "pandas"):
        culprits.extend(f"{name} from {f.filename}:{f.lineno}"
                        for f in traceback.extract_stack() if f.filename.startswith(here))
    return real_import(name, *args, **kwargs)
builtins.__import__ = probe
from snakemake.cli import main
sys.argv = ["snakemake", "-n", "--quiet", "all"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("WORKFLOW IMPORTS", culprits)
"""


def test_parse_imports_neither_torch_nor_pandas(workdir: Path) -> None:
    """Our Snakefile and rules never import them (the Slurm plugin imports pandas by itself)."""
    result = subprocess.run(["timeout", "-s", "INT", "-k", "30", "120", sys.executable, "-c",
                             HEAVY_IMPORT_PROBE], cwd=workdir, capture_output=True, text=True,
                            check=False)
    assert "WORKFLOW IMPORTS []" in result.stdout, result.stdout[-3000:] + result.stderr


@pytest.mark.parametrize(("overlay", "expected"), [
    ({"train": {"lrr": 0.2}}, "train: unknown key 'lrr'; did you mean 'lr'?"),
    ({"experiment": {"depths": [20, 57]}}, "experiment.depths: depth 57 fits no architecture"),
    ({"variants": {"stochastic": {"p_last": 1.5}}},
     "variants.stochastic.p_last: 1.5 is greater than the maximum of 1"),
    ({"experiment": {"datasets": ["cifar10", "imagenet21k"]}},  # (imagenet is registered)
     f"experiment.datasets[1]: 'imagenet21k' is not one of {list(dataset_names())}"),
    ({"train": {"lr": "fast"}}, "train.lr: 'fast' is not of type 'number'"),
    ({"experiment": {"variants": ["baseline", "uniform"]}},
     "experiment.variants lists 'uniform', which is not defined under variants"),
    ({"variants": {"stochastic": {"survival": "linear", "sweep": {"p_last": [0.5, 0.5]}}}},
     "variants.stochastic.sweep.p_last: [0.5, 0.5] has non-unique elements"),
    ({"datasets": {"cifar10": {"url": "ftp://mirror/cifar-10-python.tar.gz"}}},
     "datasets.cifar10.url: unknown URL scheme 'ftp'"),
    ({"experiment": {"archs": ["resnext"]}},
     "experiment.archs[0]: unknown architecture 'resnext'; choose one of cifar, bottleneck"),
], ids=["typo", "depth57", "p_last", "dataset", "type", "undefined-variant", "sweep", "url",
        "arch"])
def test_bad_config_stops_before_any_job(workdir: Path, overlay: dict, expected: str) -> None:
    result = snakemake(workdir, "--cores", "1", "--configfile", write_overlay(workdir, "bad.yaml",
                                                                             overlay))
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "Invalid config" in line]
    assert len(errors) == 1, result.stdout
    assert expected in errors[0]
    assert "Traceback" not in result.stdout and 'File "' not in result.stdout
    assert "Building DAG" not in result.stdout
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def jobs_of(output: str, rule: str) -> dict[str, str]:
    """The `-n -p` blocks of one rule: its wildcards line -> the whole block (shell included)."""
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", output)
    found = {}
    for block in blocks:
        if block.startswith((f"rule {rule}:", f"localrule {rule}:")):
            wildcards = re.search(r"wildcards: (.*)", block)
            found[wildcards.group(1) if wildcards else ""] = block
    return found


# Every level of the settings cascade, a sweep and a per-data-set depth in one dry run.
CASCADE = {
    "experiment": {"datasets": ["cifar10", "svhn"], "depths": [20, 1202],
                   "variants": ["baseline", "linear"], "seeds": [0],
                   "per_dataset": {"svhn": {"depths": [152]}}},
    "variants": {"linear": {"survival": "linear", "sweep": {"p_last": [0.2, 0.5]}}},
    "networks": {"resnet20": {"epochs": 3}},  # the paper's milestones never reached: a warning
}


def test_cascade_sweeps_and_new_data_sets_in_the_train_flags(workdir: Path) -> None:
    output = run_ok(workdir, "-n", "-p", "--configfile", write_overlay(workdir, "cascade.yaml",
                                                                      CASCADE))
    counts = job_counts(output)
    assert counts["train_run"] == 9 and counts["download_dataset"] == 4
    assert counts["plot_p_last_sweep"] == 1  # two p_L values of the linear rule
    assert counts["plot_heatmap"] == 1  # ... at two depths of CIFAR-10
    train = jobs_of(output, "train_run")
    assert set(train) == {f"dataset={d}, network=resnet{n}, variant={v}, seed=0"
                          for d, n in (("cifar10", 20), ("cifar10", 1202), ("svhn", 152))
                          for v in ("baseline", "linear-p_last0.2", "linear-p_last0.5")}
    for key, block in train.items():
        if "svhn" in key:  # the data set's schedule, no augmentation by default
            assert "--epochs 50 " in block and "--milestones 30 35 " in block
            assert "--no-augment " in block
        elif "network=resnet1202" in key:  # the network's schedule
            assert "--epochs 300 " in block and "--milestones 150 225 " in block
            assert "--warmup-epochs 10 " in block and "--augment " in block
        else:
            assert "--epochs 3 " in block and "--milestones 250 375 " in block
        if "p_last0.2" in key:
            assert "--p-last 0.2 " in block and "--survival linear " in block
            assert "--variant linear-p_last0.2 " in block
    downloads = jobs_of(output, "download_dataset")
    for name in ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"):
        block = downloads[f"dataset=svhn, archive={name}"]
        assert f"--file {name} --url http://ufldl.stanford.edu/housenumbers/ --md5 " in block
    prepare = jobs_of(output, "prepare_dataset")["dataset=svhn"]
    assert "--archive resources/raw/svhn " in prepare and "--use-extra " in prepare
    assert "--val-per-class-extra 200 --val-per-class-train 400 " in prepare
    warnings = [line for line in output.splitlines() if "Config warning" in line]
    assert len(warnings) == 1 and "cifar10/resnet20/baseline" in warnings[0], warnings


def test_network_families_in_the_run_folders_and_flags(workdir: Path) -> None:
    """archs: a CIFAR ResNet-50 beside the bottleneck ResNet-50, and a pre-activation
    ResNet-110 with its own networks entry: distinct folders, logs and --arch flags."""
    overlay = write_overlay(workdir, "families.yaml", {
        "experiment": {"datasets": ["cifar10"], "depths": [50, 110], "seeds": [0],
                       "archs": [None, "cifar", "preact"], "variants": ["stochastic"]},
        "networks": {"preact-resnet110": {"epochs": 7}}})
    output = run_ok(workdir, "-n", "-p", "--configfile", overlay)
    train = jobs_of(output, "train_run")
    networks = ["resnet50", "resnet110", "cifar-resnet50", "preact-resnet50", "preact-resnet110"]
    assert set(train) == {f"dataset=cifar10, network={n}, variant=stochastic, seed=0"
                          for n in networks}
    for network, block in ((n, train[f"dataset=cifar10, network={n}, variant=stochastic, "
                                     "seed=0"]) for n in networks):
        assert f"results/runs/cifar10/{network}/stochastic/seed0/summary.json" in block
        assert f"results/logs/train_run/cifar10/{network}/stochastic/seed0.log" in block
        arch = {"cifar-resnet50": "cifar", "preact-resnet50": "preact",
                "preact-resnet110": "preact"}.get(network)
        assert (f"--arch {arch} " in block) if arch else ("--arch" not in block), block
        assert (f"--epochs {7 if network == 'preact-resnet110' else 500} ") in block


@pytest.mark.parametrize(("preset", "jobs"), [
    ("table1", {"download_dataset": 5, "prepare_dataset": 3, "train_run": 30,
                "plot_heatmap": None}),
    ("fig8", {"download_dataset": 1, "prepare_dataset": 1, "train_run": 60,
              "plot_p_last_sweep": 1, "plot_heatmap": None}),  # one depth: no heat map
    ("fig8-heatmap", {"download_dataset": 1, "prepare_dataset": 1, "train_run": 110,
                      "plot_p_last_sweep": 1, "plot_heatmap": 1, "plot_gradients": 1}),
    ("resnet1202", {"download_dataset": 1, "prepare_dataset": 1, "train_run": 6}),
    ("no-augmentation", {"download_dataset": 2, "prepare_dataset": 2, "train_run": 20}),
])
def test_paper_presets_dry_run(workdir: Path, preset: str, jobs: dict[str, int]) -> None:
    output = run_ok(workdir, "-n", "--configfile", f"config/paper/{preset}.yaml")
    counts = job_counts(output)
    assert {rule: counts.get(rule) for rule in jobs} == jobs
    assert f"results/paper/{preset}/runs/" in output
    assert "Config warning" not in output


# ------------------------------------------------------------------------------------ the demo


@pytest.mark.slow
def test_demo_end_to_end(demo: tuple[Path, str, float]) -> None:
    wd, _, seconds = demo
    print(f"demo DAG to summary.tex: {seconds:.0f} s")
    out = wd / "results/demo"
    with open(out / "metrics/runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == DEMO_RUNS
    assert {(r["dataset"], r["network"], r["depth"], r["variant"]) for r in runs} == {
        (d, f"resnet{n}", n, v) for d in ("cifar10", "cinic10") for n in ("8", "20")
        for v in ("baseline", "stochastic")}
    summary = json.loads((out / "runs/cinic10/resnet20/stochastic/seed1/summary.json").read_text())
    assert summary["epochs"] == 6 and summary["survival"] == "linear"
    assert summary["settings"]["limit_train"] is None
    # The demo learns: every CIFAR-10 network well under chance (90 %) and under 50 % test error.
    cifar = [r for r in runs if r["dataset"] == "cifar10"]
    assert all(float(r["test_error_at_best"]) < 50 for r in cifar), [
        (r["depth"], r["variant"], r["seed"], r["test_error_at_best"]) for r in cifar]
    assert not list(out.glob("runs/*/*/*/*/checkpoint.pt"))
    tex = (out / "tables/summary.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    assert (out / "tables/summary.md").read_text().count("|") > 10
    for name in ("test_error_curves", "final_error", "epoch_time", "gradient_magnitude",
                 "gradient_profile"):
        assert (out / f"figures/{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (out / f"figures/{name}.png").read_bytes().startswith(b"\x89PNG")
    assert not (out / "figures/error_heatmap.pdf").exists()  # one p_L per depth: no heat map
    with open(out / "metrics/gradients.csv", newline="") as handle:
        gradients = list(csv.DictReader(handle))
    blocks = {"8": 3, "20": 9}  # residual blocks per network, 6 epochs per run
    assert len(gradients) == sum(6 * blocks[r["depth"]] for r in runs)
    assert all(float(g["mean_abs_grad"]) > 0 for g in gradients if g["active_steps"] != "0")
    assert (wd / "resources/demo/raw/cifar10/cifar-10-python.tar.gz").is_file()
    with open(out / "metrics/comparisons.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        comparisons = list(reader)
    assert reader.fieldnames == ["dataset", "network", "depth", "variant", "reference", "n",
                                 "n_reference", "mean", "mean_reference", "diff", "ci_low",
                                 "ci_high", "p_value", "p_holm"]
    assert sorted((c["dataset"], c["depth"], c["variant"], c["reference"], c["n"])
                  for c in comparisons) == [(d, n, "stochastic", "baseline", "2")
                                            for d in ("cifar10", "cinic10") for n in ("20", "8")]


@pytest.mark.slow
def test_demo_second_call_does_nothing(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    output = run_ok(wd, "--cores", "2", *DEMO)
    assert "Nothing to be done" in output
    # The third user command, as typed: a target, no --cores (profiles/default sets it).
    assert "Nothing to be done" in run_ok(wd, "results/demo/tables/summary.tex", *DEMO)


@pytest.mark.slow
def test_html_report(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    run_ok(wd, "--report", "results/demo/report.html", *DEMO)
    html = (wd / "results/demo/report.html").read_text(errors="replace")
    assert "test_error_curves.png" in html and "summary.tex" in html
    for figure in ("gradient_magnitude", "gradient_profile"):
        assert f"{figure}.png" in html
    assert "Figure 7 of Huang et al." in html  # the caption


@pytest.mark.slow
def test_editing_a_plot_option_retrains_nothing(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    overlay = write_overlay(wd, "plot.yaml", {"figures": {"log_scale": False}})
    assert dry_run(wd, *DEMO, overlay) == {"plot_figures": 1, "all": 1}


@pytest.mark.slow
def test_changing_the_learning_rate_retrains_every_run(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    overlay = write_overlay(wd, "lr.yaml", {"train": {"lr": 0.08}})
    counts = dry_run(wd, *DEMO, overlay)
    assert counts["train_run"] == DEMO_RUNS
    assert "prepare_dataset" not in counts and "download_dataset" not in counts


@pytest.mark.slow
def test_adding_a_seed_trains_only_the_new_runs(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    overlay = write_overlay(wd, "seed.yaml", {"experiment": {"seeds": [0, 1, 2]}})
    output = run_ok(wd, "-n", *DEMO, overlay)
    assert job_counts(output)["train_run"] == DEMO_RUNS // 2
    seeds = re.findall(r"wildcards: dataset=\w+, network=[\w-]+, variant=\w+, seed=(\d+)",
                       output)
    assert seeds == ["2"] * (DEMO_RUNS // 2)
    assert job_counts(output)["aggregate_metrics"] == 1


@pytest.mark.slow
def test_deleting_one_summary_retrains_only_that_run(demo: tuple[Path, str, float]) -> None:
    wd, _, _ = demo
    summary = wd / "results/demo/runs/cifar10/resnet8/baseline/seed1/summary.json"
    saved = summary.read_bytes()
    summary.unlink()
    try:
        output = run_ok(wd, "-n", *DEMO)
    finally:
        summary.write_bytes(saved)  # leave the demo complete for the other tests
    counts = job_counts(output)
    assert counts == {"train_run": 1, "aggregate_metrics": 1, "compare_variants": 1,
                      "plot_figures": 1, "plot_gradients": 1, "render_tables": 1, "all": 1}
    assert "wildcards: dataset=cifar10, network=resnet8, variant=baseline, seed=1" in output


# CIFAR-100 and SVHN fakes through the real rules (one tiny run each; SVHN without extra).
NEW_SETS = {
    "results_dir": "results/newsets",
    "experiment": {"datasets": ["cifar100", "svhn"], "depths": [8], "variants": ["stochastic"],
                   "seeds": [0]},
    "datasets": {
        "cifar100": {"fake": {"per_class": 3, "seed": 0}, "val_size": 50},
        "svhn": {"fake": {"per_class": 6, "seed": 0}, "use_extra": False,
                 "val_per_class": {"train": 2, "extra": 1},
                 "train": {"epochs": 2, "milestones": [1]}},  # over config.yaml's 50 epochs
    },
    "train": {"epochs": 2, "milestones": [1], "limit_train": 64},
}


@pytest.mark.slow
def test_new_data_sets_end_to_end(workdir: Path) -> None:
    runs = {d: f"results/newsets/runs/{d}/resnet8/stochastic/seed0" for d in ("cifar100", "svhn")}
    overlay = write_overlay(workdir, "newsets.yaml", NEW_SETS)
    run_ok(workdir, *(f"{run}/summary.json" for run in runs.values()), "--cores", "2", *DEMO,
           overlay, timeout=300)
    data = workdir / "resources/demo"
    assert sorted(p.name for p in (data / "mirror/svhn").iterdir()) == [
        "extra_32x32.mat", "test_32x32.mat", "train_32x32.mat"]  # one fake job, three files
    assert sorted(p.name for p in (data / "raw/svhn").iterdir()) == [
        "test_32x32.mat", "train_32x32.mat"]  # use_extra false: extra is not downloaded
    svhn_meta = json.loads((data / "data/svhn/meta.json").read_text())
    assert svhn_meta["use_extra"] is False and svhn_meta["counts"]["val"] == 20
    assert len(json.loads((data / "data/cifar100/meta.json").read_text())["classes"]) == 100
    for dataset, run in runs.items():
        summary = json.loads((workdir / run / "summary.json").read_text())
        assert summary["epochs"] == 2 and len(read_metrics(workdir / run)) == 2
        assert summary["settings"]["augment"] is (dataset == "cifar100")
        assert summary["num_classes"] == (100 if dataset == "cifar100" else 10)


# ------------------------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir with the tiny run trained once, uninterrupted, under results/reference."""
    wd = copy_workflow(tmp_path_factory.mktemp("tiny") / "wf")
    overlay = tiny_overlay(wd, "reference.yaml")
    (wd / "reference.yaml").write_text((wd / "reference.yaml").read_text().replace(
        "results/tiny", "results/reference"))
    reference = TINY_RUN.replace("results/tiny", "results/reference")
    run_ok(wd, f"{reference}/summary.json", "--cores", "2", *DEMO, overlay, timeout=300)
    return wd


@pytest.mark.slow
def test_interrupted_run_resumes_with_the_same_metrics(tiny: Path) -> None:
    wd = tiny
    overlay = tiny_overlay(wd)
    args = (f"{TINY_RUN}/summary.json", "--cores", "2", *DEMO, overlay)
    interrupt_after_checkpoint(wd, TINY_RUN, *args)

    run_ok(wd, *args, timeout=300)
    log = (wd / TINY_LOG).read_text()
    resumed = re.search(r"resuming from checkpoint at epoch (\d+)", log)
    assert resumed and 1 <= int(resumed.group(1)) < TINY_EPOCHS, log
    assert not (wd / TINY_RUN / "checkpoint.pt").exists()
    reference = wd / TINY_RUN.replace("results/tiny", "results/reference")
    assert read_metrics(wd / TINY_RUN) == read_metrics(reference)
    assert len(read_metrics(wd / TINY_RUN)) == TINY_EPOCHS
    done, ref = (json.loads((d / "summary.json").read_text()) for d in (wd / TINY_RUN, reference))
    assert done["final_test_error"] == ref["final_test_error"]
    assert done["best_val_error"] == ref["best_val_error"]


@pytest.mark.slow
def test_a_run_finished_after_snakemake_was_killed_is_restored_not_retrained(tiny: Path) -> None:
    """SIGKILL to Snakemake alone: its trainer finishes as an orphan, the next call (after
    `--unlock`) takes the job for incomplete and deletes its outputs, and the trainer rewrites
    them from final_state.pt instead of training the run again."""
    wd = tiny
    overlay = write_overlay(wd, "orphan.yaml", {
        "results_dir": "results/orphan",
        "experiment": {"datasets": ["cifar10"], "depths": [8], "variants": ["stochastic"],
                       "seeds": [0]},
        "train": {"epochs": TINY_EPOCHS}})
    run = wd / TINY_RUN.replace("results/tiny", "results/orphan")
    args = (str((run / "summary.json").relative_to(wd)), "--cores", "2", *DEMO, overlay)
    proc = subprocess.Popen([str(SNAKEMAKE), *args], cwd=wd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "snakemake ended before the trainer's first epoch"
            time.sleep(0.05)
        proc.kill()  # Snakemake only: the trainer goes on
        proc.wait()
        while not (run / "summary.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (run / "summary.json").exists(), "the orphaned trainer did not finish"
        while runfolder.lock_holder(run) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        finished = {name: (run / name).read_bytes() for name in ("metrics.csv", "summary.json")}

        run_ok(wd, "--unlock", *args[1:])
        output = run_ok(wd, *args, timeout=300)
        log = read_log_tail(wd / TINY_LOG.replace("results/tiny", "results/orphan"),
                            "=== attempt 2")  # the log keeps every attempt: this one's part
        assert "restored the finished run" in log and "epoch 1/" not in log, (log, output)
        assert {name: (run / name).read_bytes() for name in finished} == finished
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_changed_lr_reruns_to_the_end_even_over_an_old_checkpoint(tiny: Path) -> None:
    wd = tiny
    target = f"{TINY_RUN}/summary.json"
    if not (wd / target).exists():  # run alone: train the tiny run at the base lr first
        run_ok(wd, target, "--cores", "2", *DEMO, tiny_overlay(wd), timeout=300)

    # A changed lr makes the finished run stale: the rerun carries out to the end.
    lr_a = tiny_overlay(wd, "lr_a.yaml", lr=0.08)
    output = run_ok(wd, "-n", target, *DEMO, lr_a)
    assert job_counts(output) == {"train_run": 1}
    assert "Params have changed since last execution" in output
    run_ok(wd, target, "--cores", "2", *DEMO, lr_a, timeout=300)
    assert json.loads((wd / target).read_text())["settings"]["lr"] == 0.08

    # Interrupted at yet another lr, the run leaves a checkpoint written with that lr ...
    interrupt_after_checkpoint(wd, TINY_RUN, target, "--cores", "2", *DEMO,
                               tiny_overlay(wd, "lr_b.yaml", lr=0.02))
    # ... which never wedges the next run with other settings: it starts over and finishes.
    run_ok(wd, target, "--cores", "2", *DEMO, tiny_overlay(wd, "lr_c.yaml", lr=0.01),
           timeout=300)
    summary = json.loads((wd / target).read_text())
    assert summary["settings"]["lr"] == 0.01 and summary["epochs"] == TINY_EPOCHS
    assert len(read_metrics(wd / TINY_RUN)) == TINY_EPOCHS
    last = read_log_tail(wd / TINY_LOG, "was written with other settings")
    assert "was written with other settings" in last and "resuming" not in last
    assert not (wd / TINY_RUN / "checkpoint.pt").exists()
