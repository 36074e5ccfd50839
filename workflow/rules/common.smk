# Config -> validated config -> what the rules need, all from the torch-free sdnet.grid (tested
# Python: the run list and settings cascade, `commands` for each rule's flags, `targets` for the
# figures and tables) and sdnet.layout (where a run lives). Parsed on every snakemake call, dry
# runs included, so nothing here imports torch, numpy or pandas.

import functools
import os
import sys
from pathlib import Path

from snakemake.logging import logger

try:
    from sdnet import grid, layout, spec
except ImportError:  # a checkout used without `pip install -e .`: the package sits in src/
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
    from sdnet import grid, layout, spec
from sdnet.errors import SdnetError
from sdnet.grid import commands, targets
from sdnet.jobs import sharing

# Validation: one readable message before any job (schema with defaults filled in, then the
# checks JSON schema cannot express; warnings are one line each).
SCHEMA_PATH = grid.SCHEMA_RELPATH
try:
    grid.validate(config, warn=lambda message: logger.warning(f"Config warning: {message}"))
except grid.ConfigError as err:
    raise SystemExit(f"Invalid config: {err} (see {SCHEMA_PATH})")

commands.sdnet_on_path()

RESULTS = config["results_dir"].rstrip("/")
RESOURCES = config["resources_dir"].rstrip("/")
LOGS = f"{RESULTS}/logs"
# Wildcard patterns shared by the rules; a run's folder and log: sdnet.layout.
RUN_DIR = f"{RESULTS}/{layout.RUN_FOLDER}"
TRAIN_LOG = f"{RESULTS}/{layout.TRAIN_LOG}"
RAW_ARCHIVE = f"{RESOURCES}/raw/{{dataset}}/{{archive}}"
FAKE_ARCHIVE = f"{RESOURCES}/mirror/{{dataset}}/{{archive}}"
DATA_DIR = f"{RESOURCES}/data/{{dataset}}"
METRICS = f"{RESULTS}/metrics"
FIGURES = f"{RESULTS}/figures"
TABLES = f"{RESULTS}/tables"

# ---------------------------------------------------------------------------------------------
# Data sets (the data set registry names each one's files; sdnet.grid.commands the flags)
# ---------------------------------------------------------------------------------------------

FOLDER_DATASETS = commands.folder_datasets()
ARCHIVE_DATASETS = [d for d in spec.DATASETS if d not in FOLDER_DATASETS]


def fake_file(dataset: str, name: str) -> str:
    return FAKE_ARCHIVE.format(dataset=dataset, archive=name)


def download_input(wildcards) -> list[str]:
    """The locally made fake file when the data set is faked, else nothing."""
    if commands.is_fake(config, wildcards.dataset):
        return [fake_file(wildcards.dataset, wildcards.archive)]
    return []


def download_flags(wildcards, output) -> str:
    """It takes `output` so that Snakemake counts it as derived from the output path, not as a
    rerun trigger: where the file comes from (a mirror, say) is not what it is (its md5 is)."""
    return commands.download_flags(config, wildcards.dataset, wildcards.archive,
                                   fake_file(wildcards.dataset, wildcards.archive))


def prepare_input(wildcards) -> list[str]:
    """The downloaded files, under their official names."""
    return [RAW_ARCHIVE.format(dataset=wildcards.dataset, archive=name)
            for name in commands.dataset_files(config, wildcards.dataset)]


def prepare_archive(wildcards, input) -> str:
    """`--archive`: the archive, or for a folder data set the folder holding its files."""
    return os.path.dirname(input[0]) if wildcards.dataset in FOLDER_DATASETS else input[0]


# ---------------------------------------------------------------------------------------------
# Training runs: the run -> `sdnet train` flags (also the rule's params, so a rerun is triggered
# by exactly what changes a run) and the job's size.
# ---------------------------------------------------------------------------------------------


def run_settings(wildcards) -> dict:
    return grid.run_settings(config, wildcards.dataset, wildcards.network, wildcards.variant,
                             wildcards.seed)


def train_flags(wildcards) -> str:
    return commands.train_flags(run_settings(wildcards))


def train_ranks(wildcards) -> int:
    return commands.ranks(run_settings(wildcards))


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
    return commands.nodes(run_settings(wildcards))


def if_several_ranks(value):
    """A resource only multi-GPU jobs carry (None drops it): on Slurm `mpi` makes the executor
    run the job's command as is, so `sdnet train --nproc N` starts the N ranks with `srun`,
    and `tasks`/`tasks_per_gpu` make the job N tasks, one per GPU, over its nodes."""
    return lambda wildcards: value(wildcards) if train_ranks(wildcards) > 1 else None


TRAIN_RESOURCES = config["train_resources"]
IN_JOB = workflow.remote_exec or workflow.subprocess_exec


def train_retries() -> int:
    """Retries belong to the submitting Snakemake; inside a Slurm job they would rerun in place."""
    return 0 if IN_JOB else TRAIN_RESOURCES["retries"]


def train_runtime(wildcards, attempt: int) -> int:
    return commands.runtime(TRAIN_RESOURCES, attempt)


# Several runs per GPU (train_resources.runs_per_gpu k > 1; sdnet.jobs.sharing says how): one
# job per run with k per GPU (shard), or one job per pack of k runs (pack). k = 1 changes nothing.
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
    """The run's GPUs (locally one of its k slots with runs_per_gpu k); on Slurm with shards
    the job asks shards instead."""
    return 0 if SHARDED and on_slurm() else train_ranks(wildcards)


def train_gpu_model(wildcards) -> str | None:
    return None if SHARDED and on_slurm() else TRAIN_RESOURCES["gpu_model"]


def train_gres(wildcards) -> str:
    """--gres=shard:S on Slurm with gpu_sharing: shard (empty locally)."""
    if SHARDED and on_slurm():
        try:
            return sharing.gres_request(shards_per_job(), TRAIN_RESOURCES["gpu_model"])
        except SdnetError:  # said in one line by onstart, before any job is submitted
            return ""
    return ""


# shard: locally, `--resources gpu=G` admits k x G training jobs (the GPU lock gives each a slot).
if SHARDED and not IN_JOB:
    _gpus = workflow.global_resources.get("gpu").value
    if isinstance(_gpus, int):
        workflow.register_resource("gpu", _gpus * RUNS_PER_GPU)
        logger.info(f"runs_per_gpu {RUNS_PER_GPU}: --resources gpu={_gpus} admits "
                    f"{_gpus * RUNS_PER_GPU} training jobs, {RUNS_PER_GPU} per GPU")


onstart:
    # shard on Slurm: the cluster must have shards that fit k (one line before any job). The
    # DAG asks each job's --gres first (train_gres), which keeps the problem for this line.
    if SHARDED and on_slurm() and not IN_JOB:
        try:
            shards_per_job()
        except SdnetError as err:
            raise SystemExit(f"Invalid config: {err}") from None


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

GRID_RUNS = grid.runs(config)  # expanded once per parse: the targets below all read it
# pack: k seeds of one (data set, network, variant) per training job (sdnet.jobs.sharing.packs)
PACKS = sharing.packs(GRID_RUNS, RUNS_PER_GPU, lambda run: run.network) if PACKED else []


def all_summaries() -> list[str]:
    return [f"{RESULTS}/{run.folder}/summary.json" for run in GRID_RUNS]


def metrics_files() -> list[str]:
    """The aggregated tables: runs, epochs, gradients and the variants' comparisons."""
    return [f"{METRICS}/{name}.csv" for name in ("runs", "epochs", "gradients", "comparisons")]


def figure_files() -> list[str]:
    """Every figure of the grid (sdnet.grid.targets: error_vs_p_last only when the grid sweeps
    p_L, error_heatmap only when it varies both depth and p_L)."""
    names = targets.figure_names(targets.points(GRID_RUNS))
    return [f"{FIGURES}/{name}" for name in targets.figure_files(names)]


def table_files() -> list[str]:
    return [f"{TABLES}/{name}" for name in targets.table_files()]


def figures(*names: str) -> dict:
    """The figures' outputs, {name}_pdf and {name}_png (sdnet.grid.targets names them); each
    PNG goes into the HTML report with the caption workflow/report/{name}.rst."""
    outputs = {}
    for name in names:
        outputs[f"{name}_pdf"] = f"{FIGURES}/{name}.pdf"
        outputs[f"{name}_png"] = report(f"{FIGURES}/{name}.png",
                                        caption=f"../report/{name}.rst", category="Figures")
    return outputs


def output_folder(wildcards, output) -> str:
    """`--out-dir` of a report step: the folder of its outputs."""
    return os.path.dirname(output[0])
