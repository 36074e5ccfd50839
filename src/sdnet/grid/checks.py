"""Validation: the schema with its defaults, then what JSON schema cannot express (one line each)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sdnet import layout, networks, spec
from sdnet.errors import SdnetError
from sdnet.grid.cascade import _settings, grid_axes, grid_networks
from sdnet.grid.errors import URL_SCHEMES, ConfigError, Warn
from sdnet.grid.schema import _default_filling_validator, _load_schema, _schema_message
from sdnet.grid.sweeps import _check_sweeps, variants
from sdnet.settings import translate_aliases


def validate(cfg: dict, schema: str | Path | dict | None = None, *,
             warn: Warn | None = None) -> dict:
    """Validate `cfg` against the schema (filling in its defaults, in place), then the checks
    JSON schema cannot express (see `check`); return `cfg`. Raises ConfigError."""
    schema_doc = _load_schema(schema)
    _refuse_arch_settings(cfg)
    for message in _translate_aliases(cfg):
        (warn or _print_warning)(message)
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


def _translate_aliases(cfg: dict) -> list[str]:
    """Old names of settings (sdnet.settings.ALIASES, e.g. `amp`) become today's, in place,
    before the schema sees them; one warning line each."""
    notes: list[str] = []
    for where, level in _cascade_levels(cfg):
        if isinstance(level, dict):
            try:
                notes += translate_aliases(level, where)
            except SdnetError as err:
                raise ConfigError(str(err)) from None
    return notes


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
