"""The settings of one training run (torch-free), declared once: `TrainConfig`.

Every field of `TrainConfig` carries its declaration (`setting(...)`): help text, choices,
bounds and which part of the workflow config may set it. From that one place come
- `add_train_arguments(parser)`: the `sdnet train` flags (field `p_last` -> `--p-last`;
  booleans `--x/--no-x`, lists `nargs="*"`, ints with a minimum checked by argparse, every
  default shown by `--help`);
- `to_flags(settings)`: a run's settings as those flags (common.smk builds every training job's
  command line with it; `sdnet train` parses them back into the same values);
- `schema_properties(group)`: the JSON schema of the settings the config may set
  (`$defs.train_settings` and `$defs.survival_settings` of src/sdnet/grid/config.schema.yaml,
  which tests/test_settings.py checks against it);
- `check_config`: the same bounds and choices for a `TrainConfig` built in Python.
The enumerations are declared once and referenced: survival rules (`sdnet.spec`), network
families (`sdnet.networks.families()`), `SHORTCUTS`, `ON_MISMATCH`.

It sits below `sdnet.train.runfolder`, `sdnet.train.checkpoint` and `sdnet.train.loop` (they all import it, it
imports none of them), so the run folder's readers (`sdnet status`, the report) and the
Snakefile can use it without importing torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from sdnet import networks, spec
from sdnet.errors import SdnetError

# Settings that never change what a run computes: left out of the fingerprint (device too,
# so a run may resume on another card) and, except device, out of summary["settings"].
NOT_SETTINGS = ("out", "restart", "on_mismatch", "log_every")
NOT_FINGERPRINTED = NOT_SETTINGS + ("device",)
# Config keys of the settings cascade that size a run's job, not what it computes: `gpus` (ranks,
# one GPU each) and `nodes` (workflow/rules/common.smk turns them into resources and
# `sdnet train --nproc/--nodes`); never TrainConfig fields, never flags of `to_flags`.
RESOURCES = ("gpus", "nodes")
# Settings added after runs existed, and the values that mean what runs did before: at such a
# value a setting is left out of the fingerprint and equals an older run's missing one, so those
# runs stay valid (and their `sdnet train` flags, which leave None out, stay the same).
# The recipe's choices (issue 25) enter here with sdnet's earlier choice, never the original's
# new default: a run folder trained before them is stale under today's defaults, and a run asking
# for the earlier choices (config/fast.yaml's, in part) keeps its old fingerprint.
LATER_SETTINGS: dict[str, tuple] = {
    "sync_bn": (None, False), "bn_init": (None, "ones"), "conv_init": (None, "fan_out"),
    "normalize": (None, "channel"), "pad_fill": (None, "black"), "lr_drop": (None, "late"),
    "eval_every": (None, 0)}
# Old names of a setting: name -> (setting, {old value: value}). `sdnet train --amp/--no-amp`
# and a config's `amp:` still work (translated here), and run folders recorded with `amp` are
# read as `precision`. amp true meant bf16 training AND bf16 evaluation, which no setting gives
# now (evaluation is float32): such a run reads as the precision below, so it is stale.
ALIASES: dict[str, tuple[str, dict]] = {"amp": ("precision", {True: "bf16", False: "float32"})}
BF16_EVAL = "bf16 (bf16 evaluation)"  # what a run recorded with amp: true trained
# Keys settings_mismatch never compares: the above plus the data folder's path (the data enter
# the fingerprint by content, meta.json).
NOT_COMPARED = NOT_FINGERPRINTED + ("data",) + RESOURCES
SHORTCUTS = networks.SHORTCUTS  # the CIFAR ResNet transition shortcut (declared by the family registry)
ON_MISMATCH = ("error", "restart")
# The original code's recipe (docs/recipe.md; yueatsprograms/Stochastic_Depth): each choice's
# first value is the original's and the default, the second what sdnet did before (LATER_SETTINGS).
PRECISIONS = ("float32", "bf16")
BN_INITS = ("uniform", "ones")
CONV_INITS = ("fan_in", "fan_out")
NORMALIZATIONS = ("pixel", "channel")
PAD_FILLS = ("mean", "black")
LR_DROPS = ("original", "late")

# Where the workflow config sets a field (`setting(config=...)`):
TRAIN = "train"        # train:, datasets.<ds>.train, networks.<network>, variants ($defs.train_settings)
SURVIVAL = "survival"  # variants ($defs.survival_settings)
RUN = "run"            # the grid's run identity: data set, network (depth, arch), variant, seed
CONFIG_GROUPS = (TRAIN, SURVIVAL, RUN)
# Fields without `config`: set by the train_run rule (data, out, on_mismatch) or only by hand.

Choices = Sequence[str] | Callable[[], Sequence[str]]
Text = str | Callable[[], str]


def setting(default: Any = MISSING, *, help: Text, config: str | None = None,
            choices: Choices | None = None, minimum: float | None = None,
            exclusive_minimum: float | None = None, maximum: float | None = None,
            pattern: str | None = None, factory: Callable[[], Any] | None = None) -> Any:
    """A TrainConfig field with its declaration (see the module docstring). `choices` and `help`
    may be callables, read when a parser or schema is made (families registered later count);
    the bounds apply to each item of a list."""
    if config is not None and config not in CONFIG_GROUPS:
        raise ValueError(f"config must be one of {CONFIG_GROUPS}, got {config!r}")
    metadata = {"help": help, "config": config, "choices": choices, "minimum": minimum,
                "exclusive_minimum": exclusive_minimum, "maximum": maximum, "pattern": pattern}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every setting of one run; field names are the `sdnet train` flag names."""

    data: Path = setting(help="folder written by `sdnet data prepare`")
    dataset: str = setting(help="the prepared data set", config=RUN,
                           choices=lambda: spec.DATASETS)
    depth: int = setting(help=lambda: networks.valid_depths_text(), config=RUN)
    out: Path = setting(help="run folder")
    arch: str | None = setting(
        None, config=RUN, choices=networks.families,
        help="network family (default: the depth's own, see sdnet.networks)")
    shortcut: str = setting(
        "A", config=TRAIN, choices=SHORTCUTS,
        help="CIFAR ResNet transition shortcut: A = avg-pool + zero channels (paper), "
        "B = 1x1 conv + BN")
    survival: str = setting(
        "linear", config=SURVIVAL, choices=lambda: spec.SURVIVAL_RULES,
        help="none = constant depth; linear = Eq. 4 of the paper; uniform = p_L for every "
        "block; epoch-linear = the seed tutorial's reading (not the paper's)")
    p_last: float = setting(0.5, config=SURVIVAL, exclusive_minimum=0, maximum=1,
                            help="survival probability p_L of the last block, in (0, 1]")
    variant: str | None = setting(
        None, config=RUN, help="label stored with the results (default: the survival rule)")
    seed: int = setting(0, config=RUN, minimum=0,
                        help="initialisation, gates, shuffling and augmentation")
    epochs: int = setting(500, config=TRAIN, minimum=1, help="training epochs")
    batch_size: int = setting(128, config=TRAIN, minimum=1, help="training batch")
    lr: float = setting(0.1, config=TRAIN, exclusive_minimum=0, help="SGD learning rate")
    milestones: list[int] = setting(
        config=TRAIN, minimum=1, factory=lambda: [250, 375],
        help="epochs after which the lr is multiplied by --gamma")
    gamma: float = setting(0.1, config=TRAIN, exclusive_minimum=0, maximum=1,
                           help="lr factor at each milestone")
    momentum: float = setting(0.9, config=TRAIN, minimum=0, maximum=1,
                              help="SGD momentum (dampening 0)")
    weight_decay: float = setting(1e-4, config=TRAIN, minimum=0, help="L2 weight decay")
    nesterov: bool = setting(True, config=TRAIN, help="Nesterov momentum")
    warmup_epochs: int = setting(
        0, config=TRAIN, minimum=0,
        help="epochs at lr/10 before the schedule (the paper's ResNet-1202 recipe: 10)")
    lr_drop: str = setting(
        "original", config=TRAIN, choices=LR_DROPS,
        help="which epochs a milestone M lowers: original = from the 1-based epoch M on, as "
        "main.lua's `epoch < maxEpochs * f` (CIFAR lr 0.1 for epochs 1-249 with milestones 250 "
        "375); late = from epoch M + 1 on (PyTorch's MultiStepLR, sdnet before the setting)")
    eval_every: int = setting(
        0, config=TRAIN, minimum=0,
        help="also evaluate validation and test error every N training steps (counted over the "
        "whole run, as main.lua's iterCounter; the original SVHN recipe: 200); 0 = once per "
        "epoch. Every epoch ends with an evaluation too; the reported test error is the one at "
        "the lowest validation error of all evaluations")
    augment: bool | None = setting(
        None, config=TRAIN,
        help="pad-4 random crop + horizontal flip of the training images (default: the data "
        "set's: on for the CIFAR sets and CINIC-10, off for SVHN)")
    limit_train: int | None = setting(
        None, config=TRAIN, minimum=1,
        help="use only the first N training images, for quick runs (default: all)")
    device: str = setting("auto", config=TRAIN, pattern="^(auto|cpu|cuda(:[0-9]+)?)$",
                          help="auto, cpu, cuda or cuda:N")
    normalize: str = setting(
        "pixel", config=TRAIN, choices=NORMALIZATIONS,
        help="input normalisation: pixel = subtract the training split's mean image and divide "
        "by its one scalar std (the original's cifar-dataset.lua); channel = per-channel mean "
        "and std")
    pad_fill: str = setting(
        "mean", config=TRAIN, choices=PAD_FILLS,
        help="border of a shifted (augmented) image: mean = 0 after normalisation, the mean "
        "colour (the original shifts normalised images into a zeroed canvas); black = raw "
        "pixel 0 (torchvision's RandomCrop(padding=4) before Normalize)")
    bn_init: str = setting(
        "uniform", config=TRAIN, choices=BN_INITS,
        help="batch-norm scale at start: uniform = U(0, 1), bias 0 (the original: Torch's "
        "SpatialBatchNormalization reset, never re-initialised); ones = 1, bias 0 "
        "(fb.resnet.torch, torchvision)")
    conv_init: str = setting(
        "fan_in", config=TRAIN, choices=CONV_INITS,
        help="convolution weights: fan_in = N(0, 2 / fan_in), the original's nninit.kaiming "
        "(gain relu), and the classifier keeps Torch's default U(-1/sqrt(fan_in), "
        "1/sqrt(fan_in)) bias; fan_out = N(0, 2 / fan_out) and a zero classifier bias (sdnet "
        "before the setting). No conv has a bias: batch norm follows each one (the original's "
        "zero bias never moves: its gradient through batch norm is 0)")
    precision: str = setting(
        "float32", config=TRAIN, choices=PRECISIONS,
        help="training precision: float32 (the original; TF32 matmuls on a GPU) or bf16 "
        "(autocast on CUDA and on CPUs with native bf16, avx512_bf16/AMX; elsewhere float32). "
        "Evaluation always runs in float32. --amp/--no-amp: the old names of bf16/float32")
    channels_last: bool = setting(
        True, config=TRAIN,
        help="channels_last memory format for model and inputs (faster on CUDA and on CPU)")
    sync_bn: bool | None = setting(
        None, config=TRAIN,
        help="several ranks: batch norm over the global batch (default: off, each rank "
        "normalises its own part, as the original code on several GPUs)")
    restart: bool = setting(False, help="discard any checkpoint in --out and start over")
    on_mismatch: str = setting(
        "error", choices=ON_MISMATCH,
        help="what to do with a checkpoint written with other settings (the workflow uses "
        "restart: a rerun caused by changed settings starts clean)")
    log_every: int = setting(0, minimum=0, help="also log every N steps (0: once per epoch)")


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Declared:
    """One TrainConfig field as declared: its flag, kind and the rest of `setting(...)`."""

    name: str
    kind: type              # int, float, str, bool or Path (a list's item kind)
    is_list: bool
    optional: bool          # None allowed (= the trainer decides)
    required: bool          # no default: `sdnet train` needs the flag
    config: str | None
    minimum: float | None
    exclusive_minimum: float | None
    maximum: float | None
    pattern: str | None
    _default: Any = field(repr=False)
    _help: Text = field(repr=False)
    _choices: Choices | None = field(repr=False)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        """The default value (a fresh list for a list); MISSING when required."""
        return self._default() if callable(self._default) else self._default

    @property
    def help(self) -> str:
        return self._help() if callable(self._help) else self._help

    @property
    def choices(self) -> tuple[str, ...] | None:
        if self._choices is None:
            return None
        return tuple(self._choices() if callable(self._choices) else self._choices)


def _kind(hint: Any) -> tuple[type, bool, bool]:
    """(item kind, is a list, may be None) of a field's type annotation."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = len(rest) < len(typing.get_args(hint)), rest[0]
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


@functools.lru_cache(maxsize=1)
def declarations() -> tuple[Declared, ...]:
    """Every TrainConfig field's declaration, in field order."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in dataclasses.fields(TrainConfig):
        kind, is_list, optional = _kind(hints[f.name])
        meta = f.metadata
        default = f.default_factory if f.default_factory is not MISSING else f.default
        out.append(Declared(
            name=f.name, kind=kind, is_list=is_list, optional=optional,
            required=default is MISSING, config=meta["config"], minimum=meta["minimum"],
            exclusive_minimum=meta["exclusive_minimum"], maximum=meta["maximum"],
            pattern=meta["pattern"], _default=default, _help=meta["help"],
            _choices=meta["choices"]))
    return tuple(out)


def declared(name: str) -> Declared:
    """The declaration of field `name` (a flag name such as `p-last` works too)."""
    key = name.replace("-", "_")
    for item in declarations():
        if item.name == key:
            return item
    raise KeyError(f"{name!r} is not a sdnet train setting")


def in_config(group: str) -> tuple[Declared, ...]:
    """The fields the workflow config sets in one group (TRAIN, SURVIVAL or RUN)."""
    return tuple(d for d in declarations() if d.config == group)


# ----------------------------------------------------------------------------- flags


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum ('must be a positive integer' for 1)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            what = "a positive integer" if minimum == 1 else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = "int"  # argparse says "invalid int value: 'x'"
    return parse


def _argparse_type(item: Declared) -> Callable[[str], Any]:
    if item.kind is int and item.minimum is not None:
        return int_at_least(int(item.minimum))
    return item.kind


_METAVARS = {int: "N", float: "X", Path: "DIR"}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TrainConfig field (its declaration: help, default, choices, kind)."""
    for item in declarations():
        kwargs: dict[str, Any] = {"dest": item.name, "help": item.help}
        if item.kind in _METAVARS and not item.choices:
            kwargs["metavar"] = _METAVARS[item.kind]
        if item.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = item.default
        if item.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _argparse_type(item)
            if item.is_list:
                kwargs["nargs"] = "*"
            if item.choices is not None:
                kwargs["choices"] = item.choices
        parser.add_argument(item.flag, **kwargs)
    for old, (name, values) in ALIASES.items():
        meaning = ", ".join(f"{_show(k)} = {declared(name).flag} {v}" for k, v in values.items())
        parser.add_argument("--" + old.replace("_", "-"), dest=old, default=None,
                            action=argparse.BooleanOptionalAction,
                            help=f"old name of {declared(name).flag} ({meaning})")


def from_arguments(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed `sdnet train` arguments (other attributes are ignored); an old
    flag name (ALIASES) given sets its setting."""
    values = {item.name: getattr(args, item.name) for item in declarations()}
    for old, (name, meaning) in ALIASES.items():
        if getattr(args, old, None) is not None:
            values[name] = meaning[getattr(args, old)]
    return TrainConfig(**values)


def translate_aliases(level: dict, where: str) -> list[str]:
    """Rewrite the old names (ALIASES) of a config level's settings in place; one line per name
    translated, for a warning. SdnetError when the old and the new name disagree or the old
    value has no meaning."""
    notes = []
    for old, (name, meaning) in ALIASES.items():
        if old not in level:
            continue
        value = level.pop(old)
        values = value if isinstance(value, list) else [value]  # a sweep's list
        if any(not isinstance(v, bool) for v in values):
            raise SdnetError(f"{where}.{old} must be true or false (the old name of {name}), "
                             f"got {value!r}")
        new = [meaning[v] for v in values]
        new_value = new if isinstance(value, list) else new[0]
        if name in level and level[name] != new_value:
            raise SdnetError(f"{where}: {old}: {_show(value)} (the old name of {name}) and "
                             f"{name}: {_show(level[name])} disagree (config.yaml sets {name}; an "
                             f"overlay may still say {old}): write {name}: {_show(new_value)} "
                             f"instead of {old}")
        level[name] = new_value
        notes.append(f"{where}.{old} is the old name of {name}: read as {name}: "
                     f"{_show(new_value)} (evaluation is float32 now)")
    return notes


def to_flags(settings: Mapping[str, Any]) -> list[str]:
    """A run's settings (TrainConfig field names) as `sdnet train` arguments, sorted by name so
    that the command line is stable; None = the trainer's default (omitted). `sdnet train`
    parses them back into the same values. An unknown key or a non-bool for a flag that is one
    is a ValueError: a mistake of the caller, not of the user."""
    args: list[str] = []
    for name in sorted(settings):
        try:
            item = declared(name)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        value = settings[name]
        if value is None:
            continue
        if item.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name}: {value!r} is not true or false")
            args.append(item.flag if value else "--no-" + item.flag[2:])
        elif item.is_list:
            args += [item.flag, *(str(v) for v in value)]
        else:
            args += [item.flag, str(value)]
    return args


# ----------------------------------------------------------------------------- the schema

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", Path: "string"}


def schema_property(item: Declared) -> dict:
    """The JSON schema of one setting as the config gives it (no description or default)."""
    one: dict[str, Any] = {"type": _JSON_TYPES[item.kind]}
    if item.choices is not None:
        one["enum"] = list(item.choices)
    for key, value in (("minimum", item.minimum), ("exclusiveMinimum", item.exclusive_minimum),
                       ("maximum", item.maximum), ("pattern", item.pattern)):
        if value is not None:
            one[key] = value
    prop = {"type": "array", "items": one} if item.is_list else one
    if item.optional:
        prop["type"] = [prop["type"], "null"]
        if "enum" in prop:
            prop["enum"] = [*prop["enum"], None]
    return prop


def schema_properties(group: str) -> dict[str, dict]:
    """name -> JSON schema of every setting of a config group (TRAIN or SURVIVAL)."""
    return {item.name: schema_property(item) for item in in_config(group)}


def defaults() -> dict[str, Any]:
    """name -> default of every field that has one."""
    return {item.name: item.default for item in declarations() if not item.required}


# ----------------------------------------------------------------------------- validation


def default_augment(dataset: str) -> bool:
    """The data set's default for pad-crop + flip, from its registry object (off for SVHN: the
    original code augments "CIFAR only")."""
    return bool(spec.dataset_spec(dataset).augment)


def _or(words: Sequence[str]) -> str:
    """'A or B', 'a, b or c'."""
    words = [str(w) for w in words]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _bound_error(item: Declared, value: Any) -> str | None:
    """Why `value` breaks the declared bounds of `item`, or None."""
    if (item.exclusive_minimum == 0 and not value > 0) or (item.minimum == 1 and value < 1):
        return f"{item.flag} must be positive, got {value}"
    if item.exclusive_minimum is not None and not value > item.exclusive_minimum:
        return f"{item.flag} must be > {item.exclusive_minimum:g}, got {value}"
    if item.minimum is not None and value < item.minimum:
        return f"{item.flag} must be >= {item.minimum:g}, got {value}"
    if item.maximum is not None and value > item.maximum:
        return f"{item.flag} must be at most {item.maximum:g}, got {value}"
    return None


# Fields whose value sdnet.spec / sdnet.networks check, with messages that list what is valid.
_CHECKED_ELSEWHERE = ("dataset", "arch", "survival", "p_last")


def check_config(config: TrainConfig) -> TrainConfig:
    """Validate settings up front (one clear SdnetError each: the declared choices and bounds,
    the data set, network and survival rule), normalise types and resolve the data set's
    default `augment`."""
    config = dataclasses.replace(config, data=Path(config.data), out=Path(config.out),
                                 milestones=sorted(int(m) for m in config.milestones))
    spec.check_dataset(config.dataset)
    networks.resolve_arch(config.depth, config.arch)
    spec.check_survival(config.survival, config.p_last)
    for item in declarations():
        value = getattr(config, item.name)
        if value is None or item.name in _CHECKED_ELSEWHERE:
            continue
        choices = item.choices
        if choices is not None and value not in choices:
            raise SdnetError(f"{item.flag} must be {_or(choices)}, got {value!r}")
        for one in value if item.is_list else [value]:
            problem = _bound_error(item, one) if item.kind in (int, float) else None
            if problem:
                raise SdnetError(problem)
    if config.nesterov and config.momentum == 0:
        raise SdnetError("Nesterov momentum needs --momentum > 0 (or pass --no-nesterov)")
    if config.augment is None:
        config = dataclasses.replace(config, augment=default_augment(config.dataset))
    return config


def settings_of(config: TrainConfig) -> dict:
    """summary.json / run.json "settings": every field but out/restart/on_mismatch/log_every,
    JSON-ready, with the architecture resolved (pass a `check_config`ed config)."""
    settings = {}
    for key, value in dataclasses.asdict(config).items():
        if key not in NOT_SETTINGS:
            settings[key] = str(value) if isinstance(value, Path) else value
    settings["arch"] = networks.resolve_arch(config.depth, config.arch)
    return settings


def fingerprint(settings: dict, meta: dict) -> str:
    """Hash of everything that changes results. The data enter by content (meta.json: md5 of the
    source archive, split, counts), not by path, so a moved data folder still resumes."""
    kept = {k: v for k, v in settings.items() if k not in NOT_FINGERPRINTED and k != "data"
            and not _as_before(k, v)}
    if kept.get("precision") == "float32":  # what amp: false trained: such runs stay valid
        del kept["precision"]
        kept["amp"] = False
    kept["data_meta"] = meta
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_before(name: str, value: Any) -> bool:
    """`value` of a later setting means what runs did before it existed (LATER_SETTINGS)."""
    # Same type too: 0 is not False, 1.0 is not True.
    return name in LATER_SETTINGS and any(
        value is v or (v is not None and type(value) is type(v) and value == v)
        for v in LATER_SETTINGS[name])


def as_recorded_now(recorded: dict) -> dict:
    """A run's recorded settings under today's names: `amp` (ALIASES) as `precision`, where
    amp true reads as BF16_EVAL (it evaluated in bf16 too, which no run does now)."""
    out = dict(recorded)
    if "amp" in out and "precision" not in out:
        amp = out.pop("amp")
        out["precision"] = BF16_EVAL if amp else "float32"
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: 1e-4 == 0.0001, 500 == 500.0, [250, 375] == (250, 375), Path == str."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return float(a) == float(b)
    if isinstance(a, Path) or isinstance(b, Path):
        return str(a) == str(b)
    return a == b


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def settings_mismatch(recorded: dict, expected: dict) -> list[str]:
    """'lr 0.1 -> 0.05' for each key of `expected` whose value differs from `recorded`.

    Keys may be TrainConfig field names or `sdnet train` flag names (`p-last`). Keys that do not
    change results (device, data, out, log_every, restart, on_mismatch) and expected values of
    None (= the trainer's default) are skipped.
    """
    recorded = as_recorded_now(recorded)
    diffs = []
    for key in sorted(expected):
        name = key.replace("-", "_")
        value = expected[key]
        if name in NOT_COMPARED or value is None:
            continue
        old = recorded.get(name)
        if not _same(old, value) and not (_as_before(name, old) and _as_before(name, value)):
            before = _show(old)
            if old is None and name in LATER_SETTINGS and len(LATER_SETTINGS[name]) > 1:
                before = f"unset ({_show(LATER_SETTINGS[name][1])}, before the setting)"
            diffs.append(f"{name} {before} -> {_show(value)}")
    return diffs


def describe_mismatch(old: dict, new: dict) -> str:
    """'lr 0.1 -> 0.05, seed 0 -> 1': what differs between two runs' settings dicts."""
    keys = set(old) | set(new)
    return ", ".join(settings_mismatch(old, {k: new.get(k) for k in keys})) or \
        "the prepared data set differs"
