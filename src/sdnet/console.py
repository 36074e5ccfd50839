"""Progress and warning lines for the user, on stderr: stdout stays free for machine-readable
output (`sdnet status --json`, the path `sdnet data download` prints)."""

from __future__ import annotations

import sys

_quiet = False  # ranks > 0 of a multi-rank run: rank 0 tells the story (sdnet.distributed)


def set_quiet(quiet: bool) -> None:
    """Drop every further line (errors still reach the user through `sdnet.cli`)."""
    global _quiet
    _quiet = bool(quiet)


def log(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr, flush=True)
