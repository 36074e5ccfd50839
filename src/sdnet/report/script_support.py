"""Glue for workflow/scripts/*.py: plain arguments in, one clear line out on failure.

The package knows nothing of Snakemake; a script passes what Snakemake gives it (paths, one or
many; params as plain values) through these helpers, and runs its body in `script_logging`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sdnet.errors import SdnetError

log = logging.getLogger("sdnet.report")


def as_paths(value: str | Path | Iterable[str | Path]) -> list[Path]:
    """One path or many, as a list (a named Snakemake input is either)."""
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def as_flag(value: Any, name: str) -> bool:
    """A yes/no setting from a config: a bool, or true/false/yes/no/1/0 as text."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, (str, int)) and str(value).strip().lower() in words:
        return words[str(value).strip().lower()]
    raise SdnetError(f"{name} must be true or false, got {value!r}")


def output_folder(declared: Iterable[str | Path], expected: Callable[[Path], list[Path]]) -> Path:
    """The one folder of the declared outputs; each must be a file the step writes there."""
    paths = as_paths(declared)
    if not paths:
        raise SdnetError("no outputs declared")
    folder = paths[0].parent
    allowed = {p.name for p in expected(folder)}
    for path in paths:
        if path.parent != folder or path.name not in allowed:
            raise SdnetError(f"declared output {path} is not one of the files written into "
                             f"{folder}: {', '.join(sorted(allowed))}")
    return folder


def check_written(paths: Iterable[str | Path]) -> None:
    """Raise SdnetError naming any declared output that is missing or empty."""
    missing = [str(p) for p in as_paths(paths) if not Path(p).is_file() or not
               Path(p).stat().st_size]
    if missing:
        raise SdnetError(f"output(s) not written: {', '.join(missing)}")


@contextlib.contextmanager
def script_logging(log_path: str | Path | None) -> Iterator[None]:
    """Run a workflow script's body with logging and stderr in its log file.

    An SdnetError becomes one clear line in the log (and on the real stderr) and exit status 1;
    any other exception leaves its traceback in the log and exits 1 too.
    """
    stream = open(log_path, "w", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, ours = logging.getLogger(), logging.getLogger("sdnet")
    levels = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # other libraries' chatter (fontTools) stays out
    ours.setLevel(logging.INFO)
    where = f" (log: {log_path})" if log_path else ""
    try:
        with contextlib.redirect_stderr(stream):
            yield
    except SdnetError as err:
        log.error("%s", err)
        print(f"sdnet: error: {err}{where}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:
        log.exception("unexpected failure")
        print(f"sdnet: unexpected error: {err!r}{where}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        if log_path:
            stream.close()
