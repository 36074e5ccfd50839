"""The `sdnet` command lines the workflow's rules run, from a validated config (torch-free).

workflow/rules/*.smk only wire these into rules: the flags of `sdnet data fake / download /
prepare` for a data set, `sdnet train` for a run, `sdnet launch` for a pack of runs. The flags
are also the rules' params, so a job reruns exactly when its command changes.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path

from sdnet import spec
from sdnet.settings import to_flags

# Keys of the cascade that size the job rather than the run (sdnet.settings.RESOURCES).
JOB_SIZE = ("gpus", "nodes")


def sdnet_on_path(environ: MutableMapping[str, str] = os.environ,
                  executable: str = sys.executable) -> None:
    """Rules call plain `sdnet`: find the one installed beside the Python running Snakemake, so
    `.venv/bin/snakemake` works without an activated venv (under --sdm conda, the activated rule
    environment comes first on PATH)."""
    bindir = Path(executable).parent
    path = environ.get("PATH", "")
    if (bindir / "sdnet").exists() and str(bindir) not in path.split(os.pathsep):
        environ["PATH"] = os.pathsep.join([str(bindir), path])


# ------------------------------------------------------------------------------------ data


def folder_datasets() -> list[str]:
    """Data sets of several files (SVHN): one download job per file, one folder prepared."""
    return [d for d in spec.DATASETS if spec.dataset_spec(d).folder]


def is_fake(cfg: dict, dataset: str) -> bool:
    return cfg["datasets"][dataset].get("fake") is not None


def dataset_files(cfg: dict, dataset: str) -> list[str]:
    """The raw files this configuration needs (the data set's object says: SVHN's extra only
    with use_extra)."""
    return [f.name for f in spec.dataset_spec(dataset).needed_files(cfg["datasets"][dataset])]


def download_flags(cfg: dict, dataset: str, name: str, fake_file: str) -> str:
    """--file/--url/--md5 for `sdnet data download` of one file: `fake_file` (where the fake
    is made) for a faked data set, else a configured source, else the defaults."""
    folder = spec.dataset_spec(dataset).folder
    flags = ["--file", name] if folder else []
    if is_fake(cfg, dataset):
        url = os.path.dirname(fake_file) + "/" if folder else fake_file
        return shlex.join([*flags, "--url", url, "--md5", "none"])
    entry = cfg["datasets"][dataset]
    md5 = entry.get("md5")
    if isinstance(md5, dict):  # one md5 per file (SVHN)
        md5 = md5.get(name)
    if entry.get("url"):
        flags += ["--url", str(entry["url"])]
    if md5:
        flags += ["--md5", md5]
    return shlex.join(flags)


def fake_flags(cfg: dict, dataset: str) -> str:
    """`sdnet data fake` settings (a change remakes the fake, and so everything after it)."""
    fake = cfg["datasets"][dataset]["fake"] or {}
    flags = [f"--seed {fake.get('seed', 0)}"]
    if "per_class" in fake:
        flags.append(f"--per-class {fake['per_class']}")
    return " ".join(flags)


def prepare_flags(cfg: dict, dataset: str) -> str:
    """The settings that shape the prepared arrays (a change re-prepares and so retrains)."""
    entry = cfg["datasets"][dataset]
    flags = [f"--split-seed {entry['split_seed']}"]
    if entry.get("val_size") is not None:
        flags.append(f"--val-size {entry['val_size']}")
    if "use_extra" in entry:
        flags.append("--use-extra" if entry["use_extra"] else "--no-use-extra")
    if entry.get("max_side") is not None:
        flags.append(f"--max-side {entry['max_side']}")
    for split, count in sorted((entry.get("val_per_class") or {}).items()):
        flags.append(f"--val-per-class-{split} {count}")
    return " ".join(flags)


# ------------------------------------------------------------------------------------ training


def ranks(settings: dict) -> int:
    """GPUs (= ranks) of a run: `gpus` from the settings cascade, default 1."""
    return int(settings.get("gpus") or 1)


def nodes(settings: dict) -> int:
    return int(settings.get("nodes") or 1)


def train_flags(settings: dict) -> str:
    """`sdnet train` flags of a run (sdnet.settings.to_flags: sorted, so stable across calls;
    `sdnet train` parses them back into the same settings). A run on several GPUs ends with
    `--nproc N [--nodes M]` (one rank per GPU)."""
    args = to_flags({k: v for k, v in settings.items() if k not in JOB_SIZE})
    n, m = ranks(settings), nodes(settings)
    if n > 1 or m > 1:
        args += ["--nproc", str(n)] + (["--nodes", str(m)] if m > 1 else [])
    return shlex.join(args)


def runtime(train_resources: dict, attempt: int) -> int:
    """Minutes for this attempt: a job killed by the walltime asks for more on retry."""
    return math.ceil(train_resources["runtime"] * train_resources["runtime_growth"]
                     ** (attempt - 1))


def pack_members(runs: Iterable, data_dir: str, run_dir: str, train_log: str) -> str:
    """`sdnet launch` runs of a pack (sdnet.grid.Run): LOG -- TRAIN_ARGS, separated by ::. The
    paths are the workflow's patterns, formatted with each run's wildcards."""
    words: list[str] = []
    for run in runs:
        args = ["--data", data_dir.format(dataset=run.dataset),
                "--out", run_dir.format(**run.wildcards), *shlex.split(train_flags(run.settings)),
                "--on-mismatch", "restart"]
        words += [*(["::"] if words else []), train_log.format(**run.wildcards), "--", *args]
    return shlex.join(words)


def pack_outputs(runs: Iterable, run_dir: str) -> list[str]:
    """What a pack's job makes: each run's files (summary.json, written last, marks a run)."""
    return [f"{run_dir.format(**run.wildcards)}/{name}" for run in runs
            for name in ("metrics.csv", "summary.json", "model.pt")]


def pack_inputs(runs: Iterable, data_dir: str) -> list[str]:
    datasets = sorted({run.dataset for run in runs})
    return [f"{data_dir.format(dataset=d)}/{name}" for d in datasets
            for name in ("train.npz", "test.npz", "meta.json")]
