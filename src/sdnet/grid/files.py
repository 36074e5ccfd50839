"""Config files: read YAML, merge as Snakemake does, find the checkout's schema, load + validate."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import yaml

from sdnet.grid.checks import validate
from sdnet.grid.errors import ConfigError, Warn


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
