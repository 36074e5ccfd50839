# Config -> validated settings, paths and `sdnet train` flags. Parsed on every snakemake call
# (dry runs included), so nothing here imports torch or pandas: only the torch-free sdnet.spec.

import difflib
import math
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from snakemake.common.configfile import load_configfile

try:
    from sdnet import spec
except ImportError:  # a checkout used without `pip install -e .`: the package sits in src/
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
    from sdnet import spec


# ---------------------------------------------------------------------------------------------
# Validation: one readable message, before any job.
# ---------------------------------------------------------------------------------------------

SCHEMA = "../schemas/config.schema.yaml"  # relative to this file, as validate() wants it
SCHEMA_PATH = "workflow/schemas/config.schema.yaml"  # relative to the Snakefile


def stop(message: str) -> None:
    """Stop Snakemake before any job with one line (a WorkflowError would add a traceback)."""
    raise SystemExit(f"Invalid config: {message} (see {SCHEMA_PATH})")


def _where(error) -> str:
    """'train.lr', 'experiment.depths[1]' ... for a jsonschema error."""
    where = ""
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where.lstrip(".") or "top level"


def _schema_keys(node, keys: set[str]) -> set[str]:
    """Every property name the schema knows, for 'did you mean' hints."""
    if isinstance(node, dict):
        keys.update(node.get("properties", {}))
        for value in node.values():
            _schema_keys(value, keys)
    elif isinstance(node, list):
        for value in node:
            _schema_keys(value, keys)
    return keys


def _schema_message(error) -> str:
    """Where and what, in words; unknown keys get a 'did you mean' hint."""
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        unknown = re.findall(r"'([^']*)'", error.message.split("(", 1)[-1])
        known = _schema_keys(load_configfile(Path(workflow.basedir) / SCHEMA_PATH), set())
        hints = [m for key in unknown for m in difflib.get_close_matches(key, known, n=1)]
        hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        return f"{_where(error)}: unknown key {', '.join(repr(k) for k in unknown)}{hint}"
    if error.validator == "propertyNames":
        return f"{_where(error)}: key {error.instance!r}: {error.message}"
    return f"{_where(error)}: {error.message}"


def validate_config(cfg: dict) -> None:
    """Schema (with defaults filled in), then the checks JSON schema cannot express."""
    try:
        validate(cfg, schema=SCHEMA)
    except WorkflowError as err:
        cause = err.__context__  # snakemake wraps the jsonschema ValidationError
        if not hasattr(cause, "absolute_path"):
            raise
        stop(_schema_message(cause))
    try:
        check_experiment(cfg)
    except spec.SpecError as err:
        stop(str(err))


def check_experiment(cfg: dict) -> None:
    """Every grid entry names a defined variant and data set, and every depth a network."""
    experiment = cfg["experiment"]
    for name in experiment["variants"]:
        if name not in cfg["variants"]:
            raise spec.SpecError(
                f"experiment.variants lists {name!r}, which is not defined under variants "
                f"(defined: {', '.join(sorted(cfg['variants'])) or 'none'})"
            )
    for name in experiment["datasets"]:
        spec.check_dataset(name)
        if name not in cfg["datasets"]:
            raise spec.SpecError(f"experiment.datasets lists {name!r}, which has no entry "
                                 "under datasets")
    for variant in experiment["variants"]:
        settings = {**cfg["train"], **cfg["variants"][variant]}
        spec.check_survival(settings["survival"], settings["p_last"])
        for depth in experiment["depths"]:
            try:
                spec.resolve_arch(depth, settings.get("arch"))
            except spec.SpecError as err:
                raise spec.SpecError(f"experiment.depths: {err}") from None


validate_config(config)


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

# Wildcard patterns shared by the rules.
RUN_DIR = f"{RESULTS}/runs/{{dataset}}/resnet{{depth}}/{{variant}}/seed{{seed}}"
RAW_ARCHIVE = f"{RESOURCES}/raw/{{dataset}}/{{archive}}"
FAKE_ARCHIVE = f"{RESOURCES}/mirror/{{dataset}}/{{archive}}"
DATA_DIR = f"{RESOURCES}/data/{{dataset}}"
RUNS_CSV = f"{RESULTS}/metrics/runs.csv"
EPOCHS_CSV = f"{RESULTS}/metrics/epochs.csv"
FIGURES = ("test_error_curves", "final_error", "epoch_time")

# ---------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------

# The official archive names: `sdnet data download` stores the archive under this name.
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cinic10": "CINIC-10.tar.gz"}


def dataset_config(dataset: str) -> dict:
    """The `datasets:` entry of a data set (defaults filled in by the schema)."""
    return config["datasets"][dataset]


def is_fake(dataset: str) -> bool:
    return dataset_config(dataset).get("fake") is not None


def raw_archive(dataset: str) -> str:
    return RAW_ARCHIVE.format(dataset=dataset, archive=ARCHIVES[dataset])


def fake_archive(dataset: str) -> str:
    return FAKE_ARCHIVE.format(dataset=dataset, archive=ARCHIVES[dataset])


def download_input(wildcards) -> list[str]:
    """The locally made fake archive when the data set is faked, else nothing."""
    return [fake_archive(wildcards.dataset)] if is_fake(wildcards.dataset) else []


def download_flags(wildcards, output) -> str:
    """--url/--md5 for `sdnet data download`: the fake mirror, a configured source or defaults.

    It takes `output` so that Snakemake counts it as derived from the output path and not as a
    rerun trigger: where the archive comes from (a mirror, say) is not what it is (its md5 is
    checked), so switching to a mirror must not re-prepare and retrain everything.
    """
    if is_fake(wildcards.dataset):
        return f"--url {shlex.quote(fake_archive(wildcards.dataset))} --md5 none"
    entry = dataset_config(wildcards.dataset)
    flags = []
    if entry.get("url"):
        flags += ["--url", shlex.quote(str(entry["url"]))]
    if entry.get("md5"):
        flags += ["--md5", shlex.quote(entry["md5"])]
    return " ".join(flags)


def fake_flags(wildcards) -> str:
    """`sdnet data fake` settings (a change remakes the archive, and so everything after it)."""
    fake = dataset_config(wildcards.dataset)["fake"]
    flags = [f"--seed {fake.get('seed', 0)}"]
    if "per_class" in fake:
        flags.append(f"--per-class {fake['per_class']}")
    return " ".join(flags)


def prepare_input(wildcards) -> str:
    """The downloaded archive, under its official name."""
    return raw_archive(wildcards.dataset)


def prepare_flags(wildcards) -> str:
    """The settings that shape the prepared arrays (a change re-prepares and so retrains)."""
    entry = dataset_config(wildcards.dataset)
    flags = [f"--split-seed {entry['split_seed']}"]
    if entry.get("val_size") is not None:
        flags.append(f"--val-size {entry['val_size']}")
    return " ".join(flags)


# ---------------------------------------------------------------------------------------------
# Training runs: THE mapping run -> `sdnet train` flags (also the rule's params, so a rerun is
# triggered by exactly what changes a run).
# ---------------------------------------------------------------------------------------------


def run_settings(dataset: str, depth, variant: str, seed) -> dict:
    """Every trainer setting of one run: shared train settings, then the variant's overrides."""
    return {
        **config["train"],
        **config["variants"][variant],
        "dataset": dataset,
        "depth": int(depth),
        "variant": variant,
        "seed": int(seed),
    }


def _flag(name: str, value) -> list[str]:
    """One setting as `sdnet train` arguments; None = the trainer's default (omit)."""
    dashed = name.replace("_", "-")
    flag = f"--{dashed}"
    if value is None:
        return []
    if isinstance(value, bool):
        return [flag if value else f"--no-{dashed}"]
    if isinstance(value, list):
        return [flag, *(str(v) for v in value)]
    return [flag, str(value)]


def train_flags(wildcards) -> str:
    """`sdnet train` flags of the run named by the wildcards (sorted: stable across calls)."""
    settings = run_settings(wildcards.dataset, wildcards.depth, wildcards.variant, wildcards.seed)
    args = [arg for name in sorted(settings) for arg in _flag(name, settings[name])]
    return shlex.join(args)


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
# Targets
# ---------------------------------------------------------------------------------------------


def all_runs() -> list[dict]:
    """The grid: one dict of wildcards per training run."""
    return [
        {"dataset": d, "depth": depth, "variant": v, "seed": s}
        for d in EXPERIMENT["datasets"]
        for depth in EXPERIMENT["depths"]
        for v in EXPERIMENT["variants"]
        for s in EXPERIMENT["seeds"]
    ]


def all_summaries() -> list[str]:
    return [f"{RUN_DIR.format(**run)}/summary.json" for run in all_runs()]


def figure_files() -> list[str]:
    return [f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("pdf", "png")]


def table_files() -> list[str]:
    return [f"{RESULTS}/tables/{name}.{ext}" for name in ("summary", "per_seed")
            for ext in ("tex", "md")]
