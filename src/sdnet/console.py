"""Progress and warning lines for the user, on stderr: stdout stays free for machine-readable
output (`sdnet status --json`, the path `sdnet data download` prints)."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
