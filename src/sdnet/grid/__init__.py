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

The schema: `schema=None` means `config.schema.yaml` in this package (package data, so an
installed sdnet validates a config anywhere, without a checkout).

The package: `files` (read, merge, load), `schema` (the schema and its messages), `sweeps`,
`cascade` (a run's settings, a data set's networks, the run list), `checks` (validate and the
checks beyond the schema), `errors` (`ConfigError` and shared names).
"""

from sdnet.grid.cascade import Network, Run, grid_axes, grid_networks, network, run_settings, runs
from sdnet.grid.checks import check, validate
from sdnet.grid.errors import NAME_PATTERN, SCHEMA_RELPATH, URL_SCHEMES, ConfigError, Warn
from sdnet.grid.files import load_config, merge
from sdnet.grid.schema import _load_schema, find_schema, with_datasets  # noqa: F401 (_load_schema: tests)
from sdnet.grid.sweeps import expand_variant, variants

__all__ = ["NAME_PATTERN", "SCHEMA_RELPATH", "URL_SCHEMES", "ConfigError", "Network", "Run", "Warn",
           "check", "expand_variant", "find_schema", "grid_axes", "grid_networks", "load_config",
           "merge", "network", "run_settings", "runs", "validate", "variants", "with_datasets"]
