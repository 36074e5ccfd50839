"""The config schema: read once per file, data set parts filled in from the registry, a
default-filling validator, and its errors in words."""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sdnet import spec
from sdnet.grid.errors import SCHEMA_RELPATH, ConfigError

SCHEMA_FILE = Path(__file__).resolve().with_name(Path(SCHEMA_RELPATH).name)


def find_schema() -> Path:
    """The config schema, package data beside this module (installed or in a checkout)."""
    if not SCHEMA_FILE.is_file():
        raise ConfigError(f"cannot find the config schema {SCHEMA_FILE}: reinstall sdnet")
    return SCHEMA_FILE


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
