"""Start child processes and see them through: the one supervisor of packs and of ranks.

`sdnet launch` (several trainers side by side, `sdnet.jobs.packs`) and `sdnet train --nproc`
(one trainer on N ranks, `sdnet.jobs.ranks`) both need the same things from their children, and
this is the only place that does them:

- each child in a session of its own, so a signal to the job's process group (Ctrl-C) reaches it
  once, through the supervisor, and SIGTERM/SIGINT/SIGHUP to the supervisor (Slurm's `scancel`,
  a walltime, Snakemake cancelling) are forwarded to every child that still runs;
- a child's output copied as it comes to its log files (`tee`), or left on the terminal;
- one policy when a child fails: ranks are one run, so the others are stopped (SIGTERM, then
  SIGKILL after `grace` seconds) and nobody waits in a collective; the runs of a pack are
  independent, so the others go on and resume nothing twice;
- one exit-code policy (`exit_status`).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

POLL_SECONDS = 0.2
GRACE_SECONDS = 10.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STATED = 2  # a child that exits 2 printed its own `sdnet: error:` line


@dataclass
class Child:
    """One process to supervise: what a failure line calls it, its command and environment, and
    the files its output is copied to (none: it writes to the supervisor's stdout/stderr)."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    logs: Sequence[IO[bytes]] = ()
    proc: subprocess.Popen | None = field(default=None, repr=False)
    tee: threading.Thread | None = field(default=None, repr=False)

    @property
    def code(self) -> int | None:
        """The exit status so far: None while it runs, 128 + N when killed by signal N."""
        code = None if self.proc is None else self.proc.poll()
        return 128 - code if code is not None and code < 0 else code


def _tee(source: IO[bytes], sinks: Sequence[IO[bytes]]) -> threading.Thread:
    """Copy a child's output to its logs as it comes (a log that fails to write is skipped:
    a full disk must not stop the trainer, whose own files say what happened)."""

    def copy() -> None:
        for chunk in iter(lambda: source.read1(65536), b""):
            for sink in sinks:
                with contextlib.suppress(OSError):
                    sink.write(chunk)
                    sink.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def exit_status(first_failed: Child | None, caught: Sequence[int]) -> int:
    """The supervisor's own status: 128 + N when it was stopped by signal N, else the status
    of the child that failed first (2 when it printed its own error line), else 0."""
    if caught:
        return 128 + caught[0]
    return first_failed.code if first_failed is not None else 0


class Supervisor:
    """Run `children` to the end (`run`); `stop_all_on_failure` for the ranks of one run."""

    def __init__(self, children: Sequence[Child], *, stop_all_on_failure: bool,
                 grace: float = GRACE_SECONDS) -> None:
        self.children = list(children)
        self.stop_all_on_failure = stop_all_on_failure
        self.grace = grace
        self.caught: list[int] = []
        self.first_failed: Child | None = None  # in the order failures were seen

    def run(self) -> int:
        """Start every child, wait for all (or the first failure), return `exit_status`."""
        with self._forwarding():
            try:
                for child in self.children:
                    if self.caught:  # stopped while starting: start no more
                        break
                    self._start(child)
                self._wait()
            finally:
                self.stop()
        return exit_status(self.first_failed, self.caught)

    def _start(self, child: Child) -> None:
        piped = bool(child.logs)
        child.proc = subprocess.Popen(
            list(child.command), env=dict(child.env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else None,
            stderr=subprocess.STDOUT if piped else None, start_new_session=True)
        if piped:
            child.tee = _tee(child.proc.stdout, child.logs)

    def _wait(self) -> None:
        started = [child for child in self.children if child.proc is not None]
        while True:
            if self.first_failed is None:
                self.first_failed = next((child for child in started if child.code), None)
            if self.first_failed is not None and self.stop_all_on_failure:
                return
            if all(child.code is not None for child in started):
                return
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM whatever still runs, SIGKILL what is left after the grace period; then
        let the output copies finish."""
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            proc.terminate()
        deadline = time.monotonic() + self.grace
        for proc in live:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in self.children:
            if child.tee is not None:
                child.tee.join()

    @contextlib.contextmanager
    def _forwarding(self) -> Iterator[None]:
        def forward(signum: int, frame: Any) -> None:
            self.caught.append(signum)
            for child in self.children:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.send_signal(signum)

        saved: dict[int, Any] = {}
        for sig in FORWARDED:
            try:
                saved[sig] = signal.signal(sig, forward)
            except ValueError:  # not the main thread: leave the handlers alone
                pass
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
