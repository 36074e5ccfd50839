"""sdnet.settings: the training settings declared once, and everything made from them.

The `sdnet train` flags, the flags the workflow builds (`to_flags`) and the config schema's
`train_settings` / `survival_settings` must agree with `TrainConfig`'s declarations: these tests
fail when one of them drifts. Torch-free and fast.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdnet import cli, grid, networks, settings, spec
from sdnet.errors import SdnetError
from sdnet.settings import SURVIVAL, TRAIN, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / grid.SCHEMA_RELPATH).read_text())


def parse_train(args: list[str]) -> TrainConfig:
    """`sdnet train ARGS` as the CLI parses it, into the TrainConfig it would train."""
    return settings.from_arguments(cli.build_parser().parse_args(["train", *args]))


def other_value(item: settings.Declared) -> Any:
    """A valid value of the field that is not its default (so a lost flag shows)."""
    if item.kind is bool:
        return not item.default if item.default is not None else False
    if item.choices is not None:
        return next(c for c in reversed(item.choices) if c != item.default)
    if item.kind is Path:
        return Path(f"/somewhere/{item.name}")
    if item.name == "depth":
        return 164
    if item.is_list:
        return [3, 7, 11]
    if item.kind is int:
        return 7 if item.default in (None, 0) else item.default + 3
    if item.kind is float:
        return 0.37
    return f"label-{item.name}"


def every_field(**overrides: Any) -> dict[str, Any]:
    values = {item.name: other_value(item) for item in settings.declarations()}
    values.update(overrides)
    return values


# ----------------------------------------------------------------------------- flags


def test_every_field_round_trips_through_the_flags() -> None:
    """to_flags -> `sdnet train`'s parser gives back every value, each differing from its
    default, so each field has a flag that carries it."""
    values = every_field()
    assert parse_train(settings.to_flags(values)) == TrainConfig(**values)
    assert all(values[d.name] != d.default for d in settings.declarations() if not d.required)


@pytest.mark.parametrize("overrides", [
    {"milestones": [], "augment": True, "arch": None, "variant": None, "limit_train": None},
    {"nesterov": True, "precision": "bf16", "channels_last": True, "restart": True,
     "augment": False},
    {"lr": 1e-4, "p_last": 1, "weight_decay": 0.0, "seed": 0, "log_every": 0},
], ids=["empty-list-and-unset", "true-flags", "numbers"])
def test_edge_values_round_trip(overrides: dict) -> None:
    values = every_field(**overrides)
    parsed = parse_train(settings.to_flags(values))
    assert parsed == TrainConfig(**values)
    assert parsed.lr == values["lr"]  # 1e-4 is written 0.0001 and read back equal


def test_flags_are_sorted_and_none_is_the_trainers_default() -> None:
    flags = settings.to_flags({"seed": 1, "arch": None, "augment": False, "milestones": [5, 9],
                               "lr": 0.05})
    assert flags == ["--no-augment", "--lr", "0.05", "--milestones", "5", "9", "--seed", "1"]
    required = {"data": Path("d"), "dataset": "cifar10", "depth": 20, "out": Path("o")}
    assert parse_train(settings.to_flags(required)) == TrainConfig(**required)


@pytest.mark.parametrize(("bad", "words"), [
    ({"learning_rate": 0.1}, "'learning_rate' is not a sdnet train setting"),
    ({"nesterov": "yes"}, "nesterov: 'yes' is not true or false"),
])
def test_to_flags_refuses_what_sdnet_train_would_not_read(bad: dict, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        settings.to_flags(bad)


def test_each_grid_run_reaches_sdnet_train_with_exactly_its_settings() -> None:
    """What common.smk passes (to_flags of the run's settings) parses back into those settings,
    for every run of every shipped config."""
    configs = [["config.yaml"], ["config.yaml", "config/demo.yaml"]]
    configs += [["config.yaml", str(p)] for p in sorted((ROOT / "config/paper").glob("*.yaml"))]
    for files in configs:
        cfg = grid.load_config([ROOT / f for f in files], warn=lambda message: None)
        for run in grid.runs(cfg):
            given = {"data": Path("d"), "out": Path("o"),  # gpus/nodes size the job, not the run
                     **{k: v for k, v in run.settings.items() if k not in settings.RESOURCES}}
            config = parse_train(settings.to_flags(given))
            assert {k: getattr(config, k) for k in given} == given, (files, run)


def _option_help(text: str) -> dict[str, str]:
    """--flag -> its help text, from an argparse help page."""
    blocks: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        match = re.match(r"  (--[a-z-]+)", line)
        if match:
            flag = match.group(1)
            blocks[flag] = line
        elif flag and line.startswith("    "):
            blocks[flag] += " " + line.strip()
        else:
            flag = None
    return {flag: " ".join(text.split()) for flag, text in blocks.items()}


def test_help_shows_every_default() -> None:
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    helps = _option_help(sub.choices["train"].format_help())
    for item in settings.declarations():
        assert item.flag in helps, item.flag
        if item.required:
            continue
        assert "default" in helps[item.flag], (item.flag, helps[item.flag])
        if item.default is not None:
            shown = str(item.default)
            assert shown in helps[item.flag], (item.flag, shown, helps[item.flag])
    assert "--no-nesterov" in helps["--nesterov"]  # booleans are --x / --no-x


# ----------------------------------------------------------------------------- enumerations


def test_enumerations_come_from_their_one_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.declared("arch").choices == networks.families()
    assert settings.declared("survival").choices == spec.SURVIVAL_RULES
    assert settings.declared("dataset").choices == spec.DATASETS
    assert settings.declared("shortcut").choices == settings.SHORTCUTS
    assert settings.declared("on-mismatch").choices == settings.ON_MISMATCH
    # A family registered after import is a valid --arch as soon as a parser is made.
    toy = networks.Family("toy", "toy ResNet", "toys:build", "any", lambda depth: True, (8,))
    monkeypatch.setitem(networks.FAMILIES, "toy", toy)
    assert parse_train(["--data", "d", "--dataset", "cifar10", "--depth", "8", "--out", "o",
                        "--arch", "toy"]).arch == "toy"


@pytest.mark.parametrize(("overrides", "words"), [
    ({"shortcut": "C"}, "--shortcut must be A or B, got 'C'"),
    ({"on_mismatch": "ignore"}, "--on-mismatch must be error or restart, got 'ignore'"),
    ({"gamma": 2.0}, "--gamma must be at most 1, got 2.0"),
    ({"lr": 0.0}, "--lr must be positive, got 0.0"),
    ({"milestones": [0, 5]}, "--milestones must be positive, got 0"),
    ({"warmup_epochs": -1}, "--warmup-epochs must be >= 0, got -1"),
    ({"momentum": 0.0}, "Nesterov momentum needs --momentum > 0"),
    ({"arch": "bottleneck"}, "depth 20 fits no bottleneck ResNet (--arch bottleneck)"),
    ({"arch": "preact", "p_last": 0.0}, "must be in (0, 1]"),
])
def test_check_config_applies_the_declarations(overrides: dict, words: str) -> None:
    config = TrainConfig(**{"data": Path("d"), "dataset": "cifar10", "depth": 20,
                            "out": Path("o"), **overrides})
    with pytest.raises(SdnetError) as err:
        settings.check_config(config)
    assert words in str(err.value)


# ----------------------------------------------------------------------------- the schema


def _resolved(node: Any) -> Any:
    """A schema node with local $refs replaced and descriptions/defaults dropped."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = SCHEMA
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolved({**copy.deepcopy(target),
                              **{k: v for k, v in node.items() if k != "$ref"}})
        return {k: _resolved(v) for k, v in node.items() if k not in ("description", "default")}
    if isinstance(node, list):
        return [_resolved(v) for v in node]
    return node


@pytest.mark.parametrize(("defs", "group"), [("train_settings", TRAIN),
                                              ("survival_settings", SURVIVAL)])
def test_schema_settings_agree_with_the_declarations(defs: str, group: str) -> None:
    """Names, types, enums and bounds: the schema says what TrainConfig declares."""
    in_schema = _resolved(SCHEMA["$defs"][defs]["properties"])
    declared = settings.schema_properties(group)
    assert in_schema == declared, yaml.safe_dump({defs: {"properties": declared}})


def test_schema_defaults_are_the_trainers() -> None:
    defaults = settings.defaults()
    train = SCHEMA["properties"]["train"]
    given = {k: v["default"] for k, v in train["properties"].items() if "default" in v}
    survival = SCHEMA["$defs"]["survival_settings"]["properties"]
    given.update({k: v["default"] for k, v in survival.items() if "default" in v})
    assert given == {k: defaults[k] for k in given}
    # Every training setting is either required in train: or has its default there.
    names = {item.name for item in settings.in_config(TRAIN)}
    assert set(train["required"]) | set(train["properties"]) == names
    assert not set(train["required"]) & set(given)


def test_config_yaml_trains_with_the_trainers_defaults() -> None:
    """config.yaml's `train:` is the paper's setup, which is also `sdnet train`'s default: the
    workflow's runs and a bare `sdnet train` are the same experiment."""
    train = yaml.safe_load((ROOT / "config.yaml").read_text())["train"]
    defaults = settings.defaults()
    assert set(train) == {item.name for item in settings.in_config(TRAIN)} - {"shortcut"}
    assert train == {k: defaults[k] for k in train}


def test_the_config_groups_cover_what_the_workflow_sets() -> None:
    """RUN fields come from the grid (its run identity), the rest from the rule or by hand."""
    groups = {item.name: item.config for item in settings.declarations()}
    assert [k for k, g in groups.items() if g == settings.RUN] == [
        "dataset", "depth", "arch", "variant", "seed"]
    assert [k for k, g in groups.items() if g is None] == [
        "data", "out", "restart", "on_mismatch", "log_every"]
    cfg = grid.load_config([ROOT / "config.yaml"], warn=lambda message: None)
    run = grid.runs(cfg)[0]
    assert set(run.settings) == {k for k, g in groups.items() if g is not None}
