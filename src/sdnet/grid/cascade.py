"""The settings cascade of one run, the networks of a data set, and the grid's run list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sdnet import layout, networks
from sdnet.grid.errors import ConfigError
from sdnet.grid.sweeps import expand_variant, variants
from sdnet.settings import default_augment


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
        settings["augment"] = default_augment(dataset)
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
