# Config -> validated settings, paths and `sdnet train` flags. Parsed on every snakemake call
# (dry runs included), so nothing here imports torch, numpy or pandas: only the torch-free
# sdnet.spec (with the data set registry), sdnet.grid (validation, the settings cascade, sweeps
# and the run list, shared with `sdnet status`), sdnet.layout (where a run lives) and
# sdnet.settings (the flags).

import functools
import math
import os
import shlex
import sys
import types
from pathlib import Path

from snakemake.logging import logger

try:
    from sdnet import grid, layout, spec
except ImportError:  # a checkout used without `pip install -e .`: the package sits in src/
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
    from sdnet import grid, layout, spec
from sdnet.jobs import sharing
from sdnet.errors import SdnetError
from sdnet.settings import to_flags


# ---------------------------------------------------------------------------------------------
# Validation: one readable message, before any job (sdnet.grid.validate: schema with defaults
# filled in, then the checks JSON schema cannot express; warnings are one line each).
# ---------------------------------------------------------------------------------------------

SCHEMA_PATH = grid.SCHEMA_RELPATH  # relative to the Snakefile


def stop(message: str) -> None:
    """Stop Snakemake before any job with one line (a WorkflowError would add a traceback)."""
    raise SystemExit(f"Invalid config: {message} (see {SCHEMA_PATH})")


try:
    grid.validate(config, Path(workflow.basedir) / SCHEMA_PATH,
                  warn=lambda message: logger.warning(f"Config warning: {message}"))
except grid.ConfigError as err:
    stop(str(err))


def put_sdnet_on_path() -> None:
    """Rules call plain `sdnet`: find the one installed beside the Python running Snakemake, so
    `.venv/bin/snakemake` works without an activated venv (under --sdm conda, the activated rule
    environment comes first on PATH)."""
    bindir = Path(sys.executable).parent
    path = os.environ.get("PATH", "")
    if (bindir / "sdnet").exists() and str(bindir) not in path.split(os.pathsep):
        os.environ.update(PATH=os.pathsep.join([str(bindir), path]))


put_sdnet_on_path()

RESULTS = config["results_dir"].rstrip("/")
RESOURCES = config["resources_dir"].rstrip("/")
EXPERIMENT = config["experiment"]
LOGS = f"{RESULTS}/logs"

# Wildcard patterns shared by the rules; a run's folder and log: sdnet.layout.
RUN_DIR = f"{RESULTS}/{layout.RUN_FOLDER}"
TRAIN_LOG = f"{RESULTS}/{layout.TRAIN_LOG}"
RAW_ARCHIVE = f"{RESOURCES}/raw/{{dataset}}/{{archive}}"
FAKE_ARCHIVE = f"{RESOURCES}/mirror/{{dataset}}/{{archive}}"
DATA_DIR = f"{RESOURCES}/data/{{dataset}}"
RUNS_CSV = f"{RESULTS}/metrics/runs.csv"
EPOCHS_CSV = f"{RESULTS}/metrics/epochs.csv"
GRADIENTS_CSV = f"{RESULTS}/metrics/gradients.csv"
# sdnet.report.FIGURES and GRADIENT_FIGURES (not imported: they need pandas)
FIGURES = ("test_error_curves", "final_error", "epoch_time")
GRADIENT_FIGURES = ("gradient_magnitude", "gradient_profile")

# ---------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------

# Each data set's object (sdnet.spec.dataset_spec, from the data set registry) names its
# official files: `sdnet data download` stores each file under its name. Most data sets are one
# archive; a folder data set (SVHN) has several files, each downloaded on its own job (a failed
# 1.3 GB extra_32x32.mat does not refetch the others) and prepared as one folder.
FOLDER_DATASETS = [d for d in spec.DATASETS if spec.dataset_spec(d).folder]
ARCHIVE_DATASETS = [d for d in spec.DATASETS if d not in FOLDER_DATASETS]


def dataset_config(dataset: str) -> dict:
    """The `datasets:` entry of a data set (defaults filled in by the schema)."""
    return config["datasets"][dataset]


def is_fake(dataset: str) -> bool:
    return dataset_config(dataset).get("fake") is not None


def is_folder(dataset: str) -> bool:
    return dataset in FOLDER_DATASETS


def dataset_files(dataset: str) -> list[str]:
    """The raw files this configuration needs (the data set's object says: SVHN's extra only
    with use_extra)."""
    return [f.name for f in spec.dataset_spec(dataset).needed_files(dataset_config(dataset))]


def raw_file(dataset: str, name: str) -> str:
    return RAW_ARCHIVE.format(dataset=dataset, archive=name)


def fake_file(dataset: str, name: str) -> str:
    return FAKE_ARCHIVE.format(dataset=dataset, archive=name)


def download_input(wildcards) -> list[str]:
    """The locally made fake file when the data set is faked, else nothing."""
    if is_fake(wildcards.dataset):
        return [fake_file(wildcards.dataset, wildcards.archive)]
    return []


def download_flags(wildcards, output) -> str:
    """--file/--url/--md5 for `sdnet data download`: the fake mirror, a configured source or
    the defaults.

    It takes `output` so that Snakemake counts it as derived from the output path and not as a
    rerun trigger: where the archive comes from (a mirror, say) is not what it is (its md5 is
    checked), so switching to a mirror must not re-prepare and retrain everything.
    """
    dataset, name = wildcards.dataset, wildcards.archive
    folder = is_folder(dataset)
    flags = ["--file", shlex.quote(name)] if folder else []
    if is_fake(dataset):
        source = fake_file(dataset, name)
        url = os.path.dirname(source) + "/" if folder else source
        return " ".join([*flags, "--url", shlex.quote(url), "--md5", "none"])
    entry = dataset_config(dataset)
    md5 = entry.get("md5")
    if isinstance(md5, dict):  # one md5 per file (SVHN)
        md5 = md5.get(name)
    if entry.get("url"):
        flags += ["--url", shlex.quote(str(entry["url"]))]
    if md5:
        flags += ["--md5", shlex.quote(md5)]
    return " ".join(flags)


def fake_flags(dataset: str) -> str:
    """`sdnet data fake` settings (a change remakes the fake, and so everything after it)."""
    fake = dataset_config(dataset)["fake"] or {}
    flags = [f"--seed {fake.get('seed', 0)}"]
    if "per_class" in fake:
        flags.append(f"--per-class {fake['per_class']}")
    return " ".join(flags)


def prepare_input(wildcards) -> list[str]:
    """The downloaded files, under their official names."""
    return [raw_file(wildcards.dataset, name) for name in dataset_files(wildcards.dataset)]


def prepare_archive(wildcards, input) -> str:
    """`--archive`: the archive, or for a folder data set the folder holding its files."""
    return os.path.dirname(input[0]) if is_folder(wildcards.dataset) else input[0]


def prepare_flags(wildcards) -> str:
    """The settings that shape the prepared arrays (a change re-prepares and so retrains)."""
    entry = dataset_config(wildcards.dataset)
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


# ---------------------------------------------------------------------------------------------
# Training runs: THE mapping run -> `sdnet train` flags (also the rule's params, so a rerun is
# triggered by exactly what changes a run).
# ---------------------------------------------------------------------------------------------


def run_settings(dataset: str, network: str, variant: str, seed) -> dict:
    """Every trainer setting of one run: the cascade train < data set < network < variant,
    then the run's identity (depth and arch from the network's name)."""
    return grid.run_settings(config, dataset, network, variant, seed)


# Keys of the cascade that size the job rather than the run (sdnet.settings.RESOURCES).
JOB_SIZE = ("gpus", "nodes")


def train_flags(wildcards) -> str:
    """`sdnet train` flags of the run named by the wildcards (sdnet.settings.to_flags: sorted,
    so stable across calls; `sdnet train` parses them back into the same settings). A run on
    several GPUs ends with `--nproc N [--nodes M]` (one rank per GPU)."""
    settings = run_settings(wildcards.dataset, wildcards.network, wildcards.variant,
                            wildcards.seed)
    args = to_flags({k: v for k, v in settings.items() if k not in JOB_SIZE})
    ranks, nodes = train_ranks(wildcards), train_nodes(wildcards)
    if ranks > 1 or nodes > 1:
        args += ["--nproc", str(ranks)] + (["--nodes", str(nodes)] if nodes > 1 else [])
    return shlex.join(args)


def train_ranks(wildcards) -> int:
    """GPUs (= ranks) of the run: `gpus` from the settings cascade, default 1."""
    settings = run_settings(wildcards.dataset, wildcards.network, wildcards.variant,
                            wildcards.seed)
    return int(settings.get("gpus") or 1)


def job_threads(processes):
    """A training job's threads: train_resources.cpus for each of its processes (the ranks of
    a run, or the runs of a pack). `processes`: a number or a function of the wildcards."""
    def threads(wildcards) -> int:
        count = processes(wildcards) if callable(processes) else processes
        return count * TRAIN_RESOURCES["cpus"]
    return threads


def trainer_threads(processes):
    """`--threads` of each trainer process: the threads Snakemake gave the job (locally capped
    by --cores, so N jobs never oversubscribe it) split over its processes, at least 1 (a pack
    of k runs needs --cores >= k for that). On Slurm each task has its cpus_per_task."""
    def threads_of(wildcards, threads) -> int:
        if on_slurm():
            return TRAIN_RESOURCES["cpus"]
        count = processes(wildcards) if callable(processes) else processes
        return max(1, threads // count)
    return threads_of


def train_nodes(wildcards) -> int:
    settings = run_settings(wildcards.dataset, wildcards.network, wildcards.variant,
                            wildcards.seed)
    return int(settings.get("nodes") or 1)


def if_several_ranks(value):
    """A resource only multi-GPU jobs carry (None drops it): on Slurm `mpi` makes the executor
    run the job's command as is, so `sdnet train --nproc N` starts the N ranks with `srun`,
    and `tasks`/`tasks_per_gpu` make the job N tasks, one per GPU, over its nodes."""
    return lambda wildcards: value(wildcards) if train_ranks(wildcards) > 1 else None


def train_retries() -> int:
    """Retries belong to the submitting Snakemake; inside a Slurm job they would rerun in place."""
    if workflow.remote_exec or workflow.subprocess_exec:
        return 0
    return config["train_resources"]["retries"]


def train_runtime(wildcards, attempt: int) -> int:
    """Minutes for this attempt: a job killed by the walltime asks for more on retry."""
    res = config["train_resources"]
    return math.ceil(res["runtime"] * res["runtime_growth"] ** (attempt - 1))


# ---------------------------------------------------------------------------------------------
# Several runs per GPU (train_resources.runs_per_gpu = k > 1; sdnet.jobs.sharing says how). k = 1
# changes nothing: one train_run job per run, one GPU each.
# ---------------------------------------------------------------------------------------------

TRAIN_RESOURCES = config["train_resources"]
RUNS_PER_GPU = TRAIN_RESOURCES["runs_per_gpu"]
SHARDED = RUNS_PER_GPU > 1 and TRAIN_RESOURCES["gpu_sharing"] == "shard"
PACKED = RUNS_PER_GPU > 1 and TRAIN_RESOURCES["gpu_sharing"] == "pack"


def on_slurm() -> bool:
    """Whether jobs go to Slurm (known once the run starts; a dry run shows local resources)."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name.startswith("slurm")


@functools.cache
def shards_per_job() -> int:
    """Shards one training job asks for: the cluster's per GPU (sinfo, or the config) / k."""
    per_gpu = TRAIN_RESOURCES["shards_per_gpu"] or sharing.query_shards_per_gpu()
    return sharing.shards_per_job(RUNS_PER_GPU, per_gpu)


def train_gpu(wildcards) -> int:
    """The run's GPUs (`gpus`, default 1; locally one of its k slots with runs_per_gpu k); on
    Slurm with shards the job asks shards instead."""
    return 0 if SHARDED and on_slurm() else train_ranks(wildcards)


def train_gpu_model(wildcards) -> str | None:
    return None if SHARDED and on_slurm() else TRAIN_RESOURCES["gpu_model"]


def train_gres(wildcards) -> str:
    """--gres=shard:S on Slurm with gpu_sharing: shard (empty locally)."""
    if SHARDED and on_slurm():
        return sharing.gres_request(shards_per_job(), TRAIN_RESOURCES["gpu_model"])
    return ""


# shard: locally, `--resources gpu=G` admits k x G training jobs (the GPU lock gives each a slot).
if SHARDED and not (workflow.remote_exec or workflow.subprocess_exec):
    _gpus = workflow.global_resources.get("gpu").value
    if isinstance(_gpus, int):
        workflow.register_resource("gpu", _gpus * RUNS_PER_GPU)
        logger.info(f"runs_per_gpu {RUNS_PER_GPU}: --resources gpu={_gpus} admits "
                    f"{_gpus * RUNS_PER_GPU} training jobs, {RUNS_PER_GPU} per GPU")


def check_gpu_sharing() -> None:
    """shard on Slurm: the cluster must have shards that fit k (one line before any job)."""
    if SHARDED and on_slurm() and not (workflow.remote_exec or workflow.subprocess_exec):
        try:
            shards_per_job()
        except SdnetError as err:
            raise SystemExit(f"Invalid config: {err}") from None


onstart:
    check_gpu_sharing()


def pack_members(pack) -> str:
    """`sdnet launch` runs of a pack: LOG -- TRAIN_ARGS, separated by ::."""
    words = []
    for run in pack.runs:
        wildcards = types.SimpleNamespace(**run.wildcards)
        args = ["--data", DATA_DIR.format(dataset=run.dataset),
                "--out", RUN_DIR.format(**run.wildcards), *shlex.split(train_flags(wildcards)),
                "--on-mismatch", "restart"]
        words += [*(["::"] if words else []), TRAIN_LOG.format(**run.wildcards), "--", *args]
    return shlex.join(words)


def pack_outputs(pack) -> list[str]:
    return [f"{RUN_DIR.format(**run.wildcards)}/{name}" for run in pack.runs
            for name in ("metrics.csv", "summary.json", "model.pt")]


def pack_inputs(pack) -> list[str]:
    datasets = sorted({run.dataset for run in pack.runs})
    return [f"{DATA_DIR.format(dataset=d)}/{name}" for d in datasets
            for name in ("train.npz", "test.npz", "meta.json")]


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


GRID_RUNS = grid.runs(config)  # expanded once per parse: the targets below all read it
# pack: k seeds of one (data set, network, variant) per training job (sdnet.jobs.sharing.packs)
PACKS = sharing.packs(GRID_RUNS, RUNS_PER_GPU, lambda run: run.network) if PACKED else []


def all_summaries() -> list[str]:
    return [f"{RESULTS}/{run.folder}/summary.json" for run in GRID_RUNS]


COMPARISONS_CSV = f"{RESULTS}/metrics/comparisons.csv"
SWEEP_FIGURE = "error_vs_p_last"  # sdnet.report.SWEEP_FIGURE (not imported: it needs pandas)
HEATMAP_FIGURE = "error_heatmap"  # sdnet.report.HEATMAP_FIGURE


def has_p_last_sweep() -> bool:
    """Whether some (data set, network, augmentation) of the grid has two or more p_L values of
    one survival rule: the rows sdnet.report.sweep_rows draws against p_L."""
    values: dict[tuple, set] = {}
    for run in GRID_RUNS:
        settings = run.settings
        if settings["survival"] != "none":
            key = (run.dataset, run.network, settings.get("augment"), settings["survival"])
            values.setdefault(key, set()).add(float(settings["p_last"]))
    return any(len(p_lasts) >= 2 for p_lasts in values.values())


def has_heatmap() -> bool:
    """Whether some (data set, augmentation, survival rule) of the grid has two or more depths
    and two or more p_L values: the panels sdnet.report.heatmap_panels draws."""
    axes: dict[tuple, tuple[set, set]] = {}
    for run in GRID_RUNS:
        settings = run.settings
        if settings["survival"] != "none":
            key = (run.dataset, settings.get("augment"), settings["survival"])
            depths, p_lasts = axes.setdefault(key, (set(), set()))
            depths.add(int(run.depth))
            p_lasts.add(float(settings["p_last"]))
    return any(len(d) >= 2 and len(p) >= 2 for d, p in axes.values())


def figure_files() -> list[str]:
    """Every figure of the grid; error_vs_p_last only when the grid sweeps p_L, error_heatmap
    only when it varies both depth and p_L."""
    names = [*FIGURES, *GRADIENT_FIGURES, *([SWEEP_FIGURE] if has_p_last_sweep() else []),
             *([HEATMAP_FIGURE] if has_heatmap() else [])]
    return [f"{RESULTS}/figures/{name}.{ext}" for name in names for ext in ("pdf", "png")]


def table_files() -> list[str]:
    return [f"{RESULTS}/tables/{name}.{ext}" for name in ("summary", "per_seed", "cost")
            for ext in ("tex", "md")]


def metrics_files() -> list[str]:
    """The aggregated tables: runs, epochs, gradients and the variants' comparisons."""
    return [RUNS_CSV, EPOCHS_CSV, GRADIENTS_CSV, COMPARISONS_CSV]
