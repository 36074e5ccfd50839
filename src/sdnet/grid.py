"""Config -> runs: load and merge config files, validate them, the settings cascade, sweeps.

One implementation for every caller: `workflow/rules/common.smk` (at parse time, on every
`snakemake` call) and `sdnet status`. Torch-, numpy- and pandas-free on purpose: it imports only
yaml, jsonschema and the torch-free `sdnet.spec` (and through it the data set registry, whose
objects give the schema its data set names and entries, and check their split options),
`sdnet.networks` and `sdnet.layout`.

A run is (data set, network, variant, seed); its folder is `sdnet.layout.run_folder`.

The grid: `experiment.datasets x networks x variants x seeds`, where a data set's networks are
every family of `experiment.archs` at every depth of `experiment.depths` that the family has
(`archs` absent, or `null` in it: the depth's own family, `sdnet.networks.default_arch`), named
`sdnet.networks.network_name(depth, arch)`: `resnet110`, `preact-resnet110`, `cifar-resnet50`.
`experiment.per_dataset.<ds>` may replace `depths`, `archs`, `variants` or `seeds` for one data
set (Table 1 trains SVHN at depth 152, the CIFAR sets at 110). A depth that no chosen family
has, an unknown family, or two choices that make one network (one run folder) is a ConfigError.
A variant with `sweep: {key: [v1, v2, ...], ...}` is expanded into one variant per value
(several keys: their product, keys in sorted order) named `<variant>-<key><value>[-<key>
<value>...]`, e.g. `linear-p_last0.1`; `experiment.variants` lists the unexpanded name.

The settings cascade (most specific wins; lists such as `milestones` are replaced whole):

    train:                      shared by every run
    datasets.<ds>.train:        per data set        (SVHN's 50-epoch schedule)
    networks.<network>:         per network         (networks.resnet1202: its warm-up schedule)
    variants.<name>:            per variant         (survival rule, p_L, anything else)

plus the run's identity: dataset, depth and arch (from the network: `arch` is None for the
depth's own family, so `--arch` is passed only for another one), variant, seed. The family is
not a cascade setting (it names the run folder): `arch:` in a cascade level is refused with a
pointer to `experiment.archs`. `augment: null` resolves to the data set's default
(`sdnet.spec.dataset_spec(ds).augment`), so a dry run shows `--augment` / `--no-augment`.

The schema: `schema=None` means the checkout's `workflow/schemas/config.schema.yaml`, looked up
(1) beside this package in a source checkout (`src/sdnet/grid.py` -> `../../workflow/...`, the
editable install), then (2) in the current directory and its parents (the repository root a
user runs `sdnet status` from).
"""

from __future__ import annotations

import copy
import difflib
import functools
import itertools
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import yaml

from sdnet import layout, networks, spec
from sdnet.errors import SdnetError

SCHEMA_RELPATH = "workflow/schemas/config.schema.yaml"
# A variant name (and so a run folder's path component and the Snakemake wildcard).
NAME_PATTERN = layout.VARIANT_PATTERN
URL_SCHEMES = ("http", "https", "file")
Warn = Callable[[str], None]


class ConfigError(SdnetError, ValueError):
    """A config mistake, in one line that says where (e.g. "train.lr: 'fast' is not ...")."""


# ----------------------------------------------------------------------------- loading


def merge(base: dict, override: dict) -> dict:
    """Snakemake's --configfile merge: dicts key by key (recursively), anything else replaced.

    Returns a new dict; neither argument is changed.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, "
                          f"got {type(data).__name__}")
    return data


def find_schema() -> Path:
    """The checkout's config schema (see the module docstring for where it is looked up)."""
    candidates = [Path(__file__).resolve().parents[2] / SCHEMA_RELPATH]
    here = Path.cwd().resolve()
    candidates += [folder / SCHEMA_RELPATH for folder in (here, *here.parents)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"cannot find {SCHEMA_RELPATH}: run from the repository root")


def load_config(paths: Sequence[str | Path], schema: str | Path | None = None, *,
                warn: Warn | None = None) -> dict:
    """Read YAML files in order, merge them as Snakemake does, validate and check (defaults
    filled in). `warn` receives each warning line (default: printed to stderr)."""
    if not paths:
        raise ConfigError("no config file given")
    cfg: dict = {}
    for path in paths:
        cfg = merge(cfg, _read_yaml(Path(path)))
    try:
        return validate(cfg, schema, warn=warn)
    except ConfigError as err:
        names = " + ".join(str(p) for p in paths)
        raise ConfigError(f"invalid config ({names}): {err}") from None


# ----------------------------------------------------------------------------- the schema


@functools.lru_cache(maxsize=8)
def _schema(path: str, datasets: tuple[str, ...]) -> dict:
    """The schema file, with `datasets` (the registered names: part of the cache key, so that a
    data set registered later is seen) filled in."""
    try:
        schema = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the config schema {path}: {err}") from None
    return with_datasets(schema)


def with_datasets(schema: dict) -> dict:
    """The schema with the registered data sets filled in: the `dataset_name` enum and one
    `datasets.<name>` entry each (`Dataset.config_schema`), so that adding a data set never
    touches the schema file."""
    schema = copy.deepcopy(schema)
    defs = schema["$defs"]
    defs["dataset_name"] = {**defs.get("dataset_name", {}), "enum": list(spec.DATASETS)}
    schema["properties"]["datasets"]["properties"] = {
        name: spec.dataset_spec(name).config_schema() for name in spec.DATASETS}
    return schema


def _load_schema(schema: str | Path | dict | None) -> dict:
    names = tuple(spec.DATASETS)
    if isinstance(schema, dict):
        filled = schema["$defs"].get("dataset_name", {}).get("enum") == list(names)
        return schema if filled else with_datasets(schema)
    return _schema(str(Path(schema).resolve() if schema is not None else find_schema()), names)


def _default_filling_validator(schema: dict) -> Any:
    """A Draft 2020-12 validator that also fills in `default`s (the jsonschema FAQ recipe that
    Snakemake's own `validate` uses), so both callers see the same defaults."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return filling(schema)


def _where(path: Iterable[Any]) -> str:
    """'train.lr', 'experiment.depths[1]' ... for a path of keys and indices."""
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where.lstrip(".") or "top level"


def _schema_keys(node: Any, keys: set[str]) -> set[str]:
    """Every property name the schema knows, for 'did you mean' hints."""
    if isinstance(node, dict):
        keys.update(node.get("properties", {}))
        for value in node.values():
            _schema_keys(value, keys)
    elif isinstance(node, list):
        for value in node:
            _schema_keys(value, keys)
    return keys


def _unknown_keys(where: str, unknown: Sequence[str], known: Iterable[str]) -> str:
    known = list(known)
    hints = [m for key in unknown for m in difflib.get_close_matches(key, known, n=1)]
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    return f"{where}: unknown key {', '.join(repr(k) for k in unknown)}{hint}"


def _yaml_value(text: str) -> Any:
    """What YAML makes of `text` ('9' -> 9), or the text itself when it is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _schema_message(error: Any, schema: dict, prefix: Sequence[Any] = ()) -> str:
    """Where and what, in words; unknown keys get a 'did you mean' hint."""
    where = _where([*prefix, *error.absolute_path])
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        unknown = re.findall(r"'([^']*)'", error.message.split("(", 1)[-1])
        return _unknown_keys(where, unknown, _schema_keys(schema, set()))
    if "propertyNames" in error.absolute_schema_path:  # a key the schema does not allow
        return f"{where}: key {error.message}"
    if error.validator == "type" and isinstance(error.instance, str) \
            and not isinstance(_yaml_value(error.instance), str):
        # `snakemake --config key='{a: [1]}'` hands nested values over as text
        return (f"{where}: {error.message} (values nested in --config arrive as text; put them "
                "in a --configfile)")
    return f"{where}: {error.message}"


def validate(cfg: dict, schema: str | Path | dict | None = None, *,
             warn: Warn | None = None) -> dict:
    """Validate `cfg` against the schema (filling in its defaults, in place), then the checks
    JSON schema cannot express (see `check`); return `cfg`. Raises ConfigError."""
    schema_doc = _load_schema(schema)
    _refuse_arch_settings(cfg)
    error = next(iter(_default_filling_validator(schema_doc).iter_errors(cfg)), None)
    if error is not None:
        raise ConfigError(_schema_message(error, schema_doc))
    for message in check(cfg, schema_doc):
        (warn or _print_warning)(message)
    return cfg


def _print_warning(message: str) -> None:
    print(f"sdnet: warning: {message}", file=sys.stderr)


def _cascade_levels(cfg: dict) -> Iterable[tuple[str, Any]]:
    """(where, settings) of every level of the settings cascade, sweeps included."""
    yield "train", cfg.get("train")
    for name, entry in (cfg.get("datasets") or {}).items():
        if isinstance(entry, dict):
            yield f"datasets.{name}.train", entry.get("train")
    for name, entry in (cfg.get("networks") or {}).items():
        yield f"networks.{name}", entry
    for name, entry in (cfg.get("variants") or {}).items():
        yield f"variants.{name}", entry
        if isinstance(entry, dict):
            yield f"variants.{name}.sweep", entry.get("sweep")


def _refuse_arch_settings(cfg: dict) -> None:
    """`arch:` left the cascade when the family became part of a run's identity (its folder):
    one line saying where to choose it instead. `arch: null` (the old default) is dropped."""
    for where, level in _cascade_levels(cfg):
        if not isinstance(level, dict) or "arch" not in level:
            continue
        if level["arch"] is None and not where.endswith(".sweep"):
            del level["arch"]
            continue
        raise ConfigError(f"{where}.arch: the network family is part of a run's identity (its "
                          "folder); choose it with experiment.archs (or experiment.per_dataset."
                          "<ds>.archs), e.g. archs: [preact]")


# ----------------------------------------------------------------------------- sweeps


def _setting_keys(schema: dict) -> set[str]:
    """What a variant (and so a sweep) may set: survival settings + training settings."""
    defs = schema["$defs"]
    return set(defs["survival_settings"]["properties"]) | set(defs["train_settings"]["properties"])


def _name_part(value: Any) -> str:
    """A sweep value as part of a variant name: 0.1 -> '0.1', [30, 35] -> '30_35', true -> 'true'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "_".join(_name_part(v) for v in value) or "none"
    return str(value)


def _expand(name: str, entry: dict) -> list[tuple[str, dict]]:
    """One variant's expansion: [(name, settings)], the settings without `sweep`."""
    base = {k: v for k, v in entry.items() if k != "sweep"}
    sweep = entry.get("sweep") or {}
    if not sweep:
        return [(name, base)]
    keys = sorted(sweep)
    out = []
    for values in itertools.product(*(sweep[k] for k in keys)):
        expanded = "-".join([name, *(f"{k}{_name_part(v)}" for k, v in zip(keys, values))])
        out.append((expanded, {**base, **dict(zip(keys, values))}))
    return out


def expand_variant(cfg: dict, name: str) -> list[str]:
    """The run variants a defined variant stands for (itself, or its sweep's expansions)."""
    return [expanded for expanded, _ in _expand(name, cfg["variants"][name])]


def variants(cfg: dict) -> dict[str, dict]:
    """Every defined variant after sweep expansion: name -> its settings (no `sweep` key).
    Raises ConfigError for a name that is not a valid path component or that two variants
    share (an expansion clashing with another expansion or with a defined variant)."""
    out: dict[str, dict] = {}
    source: dict[str, str] = {}
    for name, entry in cfg["variants"].items():
        for expanded, settings in _expand(name, entry or {}):
            if not re.fullmatch(NAME_PATTERN, expanded):
                raise ConfigError(f"variants.{name}.sweep: the variant name {expanded!r} is not "
                                  f"a valid folder name (letters, digits, '_', '.', '-')")
            if expanded in out:
                raise ConfigError(f"variants.{name}: the variant name {expanded!r} is also made "
                                  f"by variants.{source[expanded]}; rename one")
            out[expanded] = settings
            source[expanded] = name
    return out


def _check_sweeps(cfg: dict, schema: dict) -> None:
    """Unknown sweep keys and out-of-range sweep values, one line each (duplicates and empty
    lists are the schema's)."""
    from jsonschema import Draft202012Validator

    known = _setting_keys(schema)
    variant_schema = {**schema["$defs"]["variant"], "$defs": schema["$defs"]}
    checker = Draft202012Validator(variant_schema)
    for name, entry in cfg["variants"].items():
        sweep = (entry or {}).get("sweep") or {}
        unknown = sorted(set(sweep) - known)
        if unknown:
            raise ConfigError(_unknown_keys(f"variants.{name}.sweep", unknown, known))
        base = {k: v for k, v in entry.items() if k != "sweep"}
        for key, values in sweep.items():
            for i, value in enumerate(values):
                error = next(iter(checker.iter_errors({**base, key: value})), None)
                if error is not None:
                    raise ConfigError(f"variants.{name}.sweep.{key}[{i}]: {error.message}")
    variants(cfg)


# ----------------------------------------------------------------------------- the cascade


class Network(NamedTuple):
    """A network of the grid: its name (the run folder's component), family and depth."""

    name: str
    arch: str
    depth: int


def network(name_or_depth: str | int) -> Network:
    """The network a name (`preact-resnet110`) or a bare depth (its own family) stands for;
    ConfigError when it names none."""
    try:
        if isinstance(name_or_depth, int) or str(name_or_depth).isdigit():
            name = networks.network_name(int(name_or_depth))
        else:
            name = str(name_or_depth)
        arch, depth = networks.parse_network(name)
    except networks.SpecError as err:
        raise ConfigError(str(err)) from None
    return Network(name, arch, depth)


def run_settings(cfg: dict, dataset: str, network_name: str | int, variant: str,
                 seed: int | str) -> dict:
    """Every `sdnet train` setting of one run (TrainConfig field names): train < data set <
    network < variant, most specific wins, then the run's identity; `augment: null` -> the
    data set's default. `network_name` is a network name or a bare depth (its own family)."""
    return _settings(cfg, variants(cfg), dataset, network(network_name), variant, seed)


def _settings(cfg: dict, expanded: dict[str, dict], dataset: str, net: Network,
              variant: str, seed: int | str) -> dict:
    """run_settings with the sweep expansion and the network done once by the caller."""
    try:
        variant_settings = expanded[variant]
    except KeyError:
        raise ConfigError(f"no variant {variant!r} (defined, after sweeps: "
                          f"{', '.join(expanded) or 'none'})") from None
    settings = {
        **cfg["train"],
        **(cfg["datasets"].get(dataset, {}).get("train") or {}),
        **((cfg.get("networks") or {}).get(net.name) or {}),
        **variant_settings,
        "dataset": dataset,
        "depth": net.depth,
        # --arch only for a family other than the depth's own: today's flags stay unchanged
        "arch": None if net.arch == networks.default_arch(net.depth) else net.arch,
        "variant": variant,
        "seed": int(seed),
    }
    if settings.get("augment") is None:
        settings["augment"] = spec.dataset_spec(dataset).augment
    return settings


@dataclass(frozen=True)
class Run:
    """One training run of the grid: (data set, network, variant, seed)."""

    dataset: str
    network: str
    variant: str
    seed: int
    settings: dict = field(hash=False, compare=False, repr=False)

    @property
    def depth(self) -> int:
        return networks.parse_network(self.network)[1]

    @property
    def arch(self) -> str:
        """The network's family, resolved (`cifar` for resnet110)."""
        return networks.parse_network(self.network)[0]

    @property
    def folder(self) -> str:
        """The run folder, relative to results_dir (sdnet.layout)."""
        return layout.run_folder(self.dataset, self.network, self.variant, self.seed)

    @property
    def wildcards(self) -> dict:
        """The Snakemake wildcards of its train_run job."""
        return {"dataset": self.dataset, "network": self.network, "variant": self.variant,
                "seed": self.seed}


def _own(cfg: dict, dataset: str) -> dict:
    return (cfg["experiment"].get("per_dataset") or {}).get(dataset) or {}


def _axis_key(cfg: dict, dataset: str, axis: str) -> str:
    """Where the config sets one axis of a data set's grid (for messages)."""
    if axis in _own(cfg, dataset):
        return f"experiment.per_dataset.{dataset}.{axis}"
    return f"experiment.{axis}"


def _no_family(where: str, depth: int, archs: Sequence[str | None]) -> ConfigError:
    """A depth that none of the chosen families has: say which families do."""
    chosen = ", ".join("null (the depth's own)" if a is None else a for a in archs)
    fitting = [name for name in networks.families() if networks.family(name).accepts(depth)]
    hint = (f"families with depth {depth}: {', '.join(fitting)} (add one to archs)" if fitting
            else networks.valid_depths_text())
    return ConfigError(f"{where}: depth {depth} fits no architecture of archs [{chosen}]; {hint}")


def grid_networks(cfg: dict, dataset: str) -> list[Network]:
    """One data set's networks: every chosen family (`archs`, default [null] = the depth's own)
    at every depth it has, families in the order given, then depths; a network that two
    choices make (null and cifar at 110) once. ConfigError for an unknown family or a depth no
    chosen family has."""
    experiment, own = cfg["experiment"], _own(cfg, dataset)
    depths = [int(d) for d in own.get("depths", experiment["depths"])]
    archs = list(own.get("archs", experiment.get("archs") or [None]))
    archs_key = _axis_key(cfg, dataset, "archs")
    for i, arch in enumerate(archs):
        if arch is not None:
            try:
                networks.family(arch)
            except networks.SpecError as err:
                raise ConfigError(f"{archs_key}[{i}]: {err}") from None
    out: dict[str, Network] = {}
    for arch in archs:
        for depth in depths:
            try:
                name = networks.network_name(depth, arch)
            except networks.SpecError:
                continue  # this family has no network of this depth; another may
            out.setdefault(name, Network(name, *networks.parse_network(name)))
    for depth in depths:
        if not any(net.depth == depth for net in out.values()):
            raise _no_family(_axis_key(cfg, dataset, "depths"), depth, archs)
    return list(out.values())


def grid_axes(cfg: dict, dataset: str) -> tuple[list[str], list[str], list[int]]:
    """(network names, expanded variants, seeds) of one data set of the experiment."""
    experiment, own = cfg["experiment"], _own(cfg, dataset)
    names = own.get("variants", experiment["variants"])
    seeds = own.get("seeds", experiment["seeds"])
    expanded = [v for name in names for v in expand_variant(cfg, name)]
    return ([net.name for net in grid_networks(cfg, dataset)], expanded,
            [int(s) for s in seeds])


def runs(cfg: dict) -> list[Run]:
    """THE config -> runs expansion, in a stable order: data set, network (family, then
    depth), variant, seed as listed in `experiment` (a sweep's expansions in their product
    order)."""
    out = []
    expanded = variants(cfg)
    for dataset in cfg["experiment"]["datasets"]:
        _, names, seeds = grid_axes(cfg, dataset)
        for net in grid_networks(cfg, dataset):
            for variant in names:
                for seed in seeds:
                    out.append(Run(dataset, net.name, variant, seed,
                                   _settings(cfg, expanded, dataset, net, variant, seed)))
    return out


# ----------------------------------------------------------------------------- checks


def check(cfg: dict, schema: dict | None = None) -> list[str]:
    """The checks JSON schema cannot express; raises ConfigError, returns warning lines."""
    schema = _load_schema(schema)
    _check_references(cfg)
    _check_sweeps(cfg, schema)
    for name, entry in cfg["datasets"].items():
        _check_source(name, entry)
    for key in cfg.get("networks") or {}:
        try:
            networks.parse_network(key)
        except networks.SpecError as err:
            raise ConfigError(f"networks.{key}: {err}") from None
    _check_folders(cfg)
    return _check_runs(cfg)


def _check_references(cfg: dict) -> None:
    """Every grid entry names a defined variant and a data set with an entry."""
    experiment = cfg["experiment"]
    defined = cfg["variants"]
    per_dataset = experiment.get("per_dataset") or {}
    lists = [("experiment.variants", experiment["variants"])]
    lists += [(f"experiment.per_dataset.{ds}.variants", own["variants"])
              for ds, own in per_dataset.items() if own and "variants" in own]
    for where, names in lists:
        for name in names:
            if name not in defined:
                raise ConfigError(f"{where} lists {name!r}, which is not defined under variants "
                                  f"(defined: {', '.join(sorted(defined)) or 'none'})")
    for name in experiment["datasets"]:
        try:
            spec.check_dataset(name)
        except spec.SpecError as err:
            raise ConfigError(f"experiment.datasets: {err}") from None
        if name not in cfg["datasets"]:
            raise ConfigError(f"experiment.datasets lists {name!r}, which has no entry under "
                              "datasets")


def _check_url(where: str, url: str | None) -> None:
    if not url:
        return
    scheme = urlsplit(str(url)).scheme.lower()
    if len(scheme) > 1 and scheme not in URL_SCHEMES:  # one letter: a Windows drive, a path
        raise ConfigError(f"{where}: unknown URL scheme {scheme!r} in {url!r}; use http(s)://, "
                          "file:// or a plain path")


def _check_source(name: str, entry: dict) -> None:
    """URL scheme, and split options that fit the data set (real or fake: its object says)."""
    _check_url(f"datasets.{name}.url", entry.get("url"))
    problem = spec.dataset_spec(name).config_problem(entry)
    if problem:
        raise ConfigError(f"datasets.{name}.{problem}")


def _check_folders(cfg: dict) -> None:
    """Two runs never share a run folder, on a case-insensitive file system either (variants
    `Base` and `base`)."""
    seen: dict[str, str] = {}
    for dataset in cfg["experiment"]["datasets"]:
        names, expanded, seeds = grid_axes(cfg, dataset)
        for name in names:
            for variant in expanded:
                for seed in seeds:
                    folder = layout.run_folder(dataset, name, variant, seed)
                    other = seen.setdefault(folder.lower(), folder)
                    if other != folder:
                        raise ConfigError(f"runs {other} and {folder} would share one folder on "
                                          "a case-insensitive file system; rename a variant")


def _check_runs(cfg: dict) -> list[str]:
    """Per (data set, network, variant): a valid rule and p_L; warnings for milestones the
    schedule never reaches (legitimate in a short run, so not refused)."""
    late: dict[tuple, list[str]] = {}
    expanded = variants(cfg)
    for dataset in cfg["experiment"]["datasets"]:
        _, names, _ = grid_axes(cfg, dataset)
        for net in grid_networks(cfg, dataset):
            for variant in names:
                settings = _settings(cfg, expanded, dataset, net, variant, 0)
                try:
                    spec.check_survival(settings["survival"], settings["p_last"])
                except spec.SpecError as err:
                    raise ConfigError(f"variants.{variant}: {err}") from None
                epochs = settings["epochs"]
                never = [m for m in settings.get("milestones") or [] if m >= epochs]
                if never:
                    key = (tuple(never), epochs)
                    late.setdefault(key, []).append(f"{dataset}/{net.name}/{variant}")
    return [f"milestones {', '.join(map(str, never))} are at or past the last epoch ({epochs}) "
            f"of {_some(where)}: the learning rate never drops there"
            for (never, epochs), where in late.items()]


def _some(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
