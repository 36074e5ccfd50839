"""The one supervisor of packs and ranks (sdnet.jobs.supervisor): policies, exit codes, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sdnet.jobs.supervisor import Child, Supervisor

PY = sys.executable


def child(name: str, code: str, logs=()) -> Child:
    return Child(name, [PY, "-c", code], dict(os.environ), logs)


def test_ranks_policy_stops_the_others_at_the_first_failure(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    slow = child("rank 0", f"import time, pathlib; time.sleep(30); pathlib.Path({str(marker)!r}).touch()")
    fails = child("rank 1", "import sys, time; time.sleep(0.3); sys.exit(3)")
    supervisor = Supervisor([slow, fails], stop_all_on_failure=True, grace=5)
    start = time.monotonic()
    assert supervisor.run() == 3
    assert time.monotonic() - start < 20  # not the 30 s of rank 0
    assert supervisor.first_failed is fails
    assert slow.code == 128 + signal.SIGTERM and not marker.exists()


def test_pack_policy_lets_the_others_finish(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    ok = child("run a", f"import time, pathlib; time.sleep(1); pathlib.Path({str(marker)!r}).touch()")
    fails = child("run b", "import sys; sys.exit(5)")
    supervisor = Supervisor([ok, fails], stop_all_on_failure=False)
    assert supervisor.run() == 5
    assert marker.exists() and ok.code == 0 and supervisor.first_failed is fails


def test_output_goes_to_every_log_and_a_killed_child_reads_128_plus_n(tmp_path: Path) -> None:
    logs = [open(tmp_path / "a.log", "wb"), open(tmp_path / "b.log", "wb")]  # noqa: SIM115
    killed = child("run", "import os, signal; print('hello', flush=True); "
                          "os.kill(os.getpid(), signal.SIGKILL)", logs)
    try:
        assert Supervisor([killed], stop_all_on_failure=False).run() == 128 + signal.SIGKILL
    finally:
        for handle in logs:
            handle.close()
    assert (tmp_path / "a.log").read_text() == (tmp_path / "b.log").read_text() == "hello\n"


def test_sigterm_to_the_supervisor_reaches_every_child(tmp_path: Path) -> None:
    """As Slurm's scancel or a walltime does: the children see SIGTERM, the status is 143."""
    script = textwrap.dedent(f"""
        import os, sys
        from sdnet.jobs.supervisor import Child, Supervisor
        code = ("import signal, sys, time, pathlib\\n"
                "def bye(*a):\\n"
                "    pathlib.Path(sys.argv[1]).touch(); sys.exit(0)\\n"
                "signal.signal(signal.SIGTERM, bye)\\n"
                "pathlib.Path(sys.argv[1] + '.up').touch(); time.sleep(60)\\n")
        kids = [Child(f"c{{i}}", [sys.executable, "-c", code, f"{tmp_path}/got{{i}}"],
                      dict(os.environ)) for i in range(2)]
        sys.exit(Supervisor(kids, stop_all_on_failure=False).run())
    """)
    proc = subprocess.Popen([PY, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"got{i}.up").exists() for i in range(2)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "got0").exists() and (tmp_path / "got1").exists()
