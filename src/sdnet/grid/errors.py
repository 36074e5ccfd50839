"""The one error a config mistake raises, and the names every part of sdnet.grid shares."""

from __future__ import annotations

from collections.abc import Callable

from sdnet import layout
from sdnet.errors import SdnetError

# The config schema ships in the package (package data): an installed sdnet needs no checkout.
SCHEMA_RELPATH = "src/sdnet/grid/config.schema.yaml"  # in a checkout, from its root
# A variant name (and so a run folder's path component and the Snakemake wildcard).
NAME_PATTERN = layout.VARIANT_PATTERN
URL_SCHEMES = ("http", "https", "file")
Warn = Callable[[str], None]


class ConfigError(SdnetError, ValueError):
    """A config mistake, in one line that says where (e.g. "train.lr: 'fast' is not ...")."""
