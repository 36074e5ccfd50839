"""Variants with `sweep:` expanded into one variant per value (or product of values)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from sdnet.grid.errors import NAME_PATTERN, ConfigError
from sdnet.grid.schema import _unknown_keys


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
