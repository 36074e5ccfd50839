"""The one prepared GPU call, checked without a GPU (issue 29).

`benchmarks/run_gpu.sh --rehearse` runs every part at toy size on the CPU with the GPU call's
`$OUT` layout; what it leaves must come back from a lent machine (at most 8 files of at most
16 MiB, 64 MiB together, no deeper than two folders under $OUT, plain names), every part must end
inside its limit, and the limits must add up to the budget of one call. The CUDA tests must be
collectable from their own folder without pandas, scipy or matplotlib.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run_gpu.sh"
MIB = 1024 * 1024
# The device tool's limits on what comes back from $OUT (/work/.library/device/README.md).
MAX_FILES, MAX_FILE, MAX_TOTAL, MAX_DEPTH = 8, 16 * MIB, 64 * MIB, 2
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
PARTS = ["cache", "cuda_tests", "bench_memory", "bench_step", "bench_concurrent",
         "resnet50_steps", "bench_data", "profile_step"]
PART_LINE = re.compile(r"^-- (\w+): (\d+) s of (\d+) s limit, exit (\d+)$", re.MULTILINE)
LIMIT_CALL = re.compile(r"^\s*(?:run_limited|part) (\w+) (\d+)\b", re.MULTILINE)
# One call: at most 9.5 minutes worst case on the device (the tool's per-command limit is 10).
WORST_CASE_S = 570


def _check_out_folder(out: Path) -> list[Path]:
    files = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    assert 0 < len(files) <= MAX_FILES, [str(p.relative_to(out)) for p in files]
    for path in files:
        rel = path.relative_to(out)
        assert not path.is_symlink() and path.stat().st_size <= MAX_FILE, rel
        assert len(rel.parts) - 1 <= MAX_DEPTH, f"{rel} is more than {MAX_DEPTH} folders deep"
        assert all(NAME.match(part) for part in rel.parts), rel
    assert sum(p.stat().st_size for p in files) <= MAX_TOTAL
    return files


def test_the_limits_fit_one_call():
    """Every part's limit, summed, stays under the worst case, and the budget guard with it."""
    text = SCRIPT.read_text()
    limits = {name: int(limit) for name, limit in LIMIT_CALL.findall(text)}
    assert set(PARTS) <= set(limits), limits
    budget = int(re.search(r"BUDGET_S=\$\{BUDGET_S:-(\d+)\}", text).group(1))
    assert sum(limits.values()) <= budget <= WORST_CASE_S - 10  # 10 s: header, nvidia-smi


@pytest.mark.slow
def test_rehearsal_leaves_what_the_machine_sends_back(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = dict(os.environ, OUT=str(out), CACHE=str(cache), PYTHON=sys.executable,
               SDNET_GIT_COMMIT="rehearsal", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the script puts the checkout's src/ first itself
    proc = subprocess.run(["bash", str(SCRIPT), "--rehearse"], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    summary = (out / "summary.txt").read_text()
    assert proc.returncode == 0, summary[-4000:] + proc.stderr[-2000:]
    files = _check_out_folder(out)
    assert not any(p.name.endswith(".npz") for p in files)  # the data cache stayed out of $OUT
    assert any(cache.rglob("meta.json"))
    # every part ran, inside its limit, and said so in the summary
    ran = {name: (int(took), int(limit), int(rc))
           for name, took, limit, rc in PART_LINE.findall(summary)}
    assert set(PARTS) <= set(ran), summary[-3000:]
    for name, (took, limit, rc) in ran.items():
        assert rc == 0 and took <= limit, (name, took, limit)
    assert "commit rehearsal" in summary and "REHEARSAL" in summary
    # the CUDA tests were collected from their own folder (and skipped: no GPU here)
    assert re.search(r"\d+ skipped", summary)
    for name in ("step", "memory", "concurrent", "data"):
        assert (out / f"{name}-quick.json").is_file(), name
    assert '"commit": "rehearsal"' in (out / "memory-quick.json").read_text()


def test_out_folder_check_catches_what_would_not_come_back(tmp_path):
    """The checker itself: a third folder level, or a ninth file, fails it."""
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("x")
    with pytest.raises(AssertionError):
        _check_out_folder(tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(MAX_FILES + 1):
        (flat / f"{i}.json").write_text("{}")
    with pytest.raises(AssertionError):
        _check_out_folder(flat)


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pandas", "scipy", "matplotlib"}:
            raise ImportError(f"{name} is blocked: the CUDA tests must not need it")
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--collect-only", "-m", "cuda",
                      "tests/cuda"]))
"""


def test_cuda_tests_collect_without_pandas_or_scipy():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-c", BLOCKER], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"\b[2-9]\d* tests? collected|collected [2-9]", proc.stdout), proc.stdout


def test_cuda_tests_live_only_in_their_folder():
    """`pytest -m cuda tests/cuda` must find them all: none is marked elsewhere."""
    elsewhere = [p.relative_to(ROOT) for p in (ROOT / "tests").rglob("*.py")
                 if "cuda" not in p.parts and "mark.cuda" in p.read_text()
                 and p.name != Path(__file__).name]
    assert elsewhere == []


def test_the_commit_is_passed_in_or_unknown_never_an_error(monkeypatch):
    """A lent machine has no git and no .git: the figures must still be written."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import common
    finally:
        sys.path.remove(str(ROOT))
    monkeypatch.setenv("SDNET_GIT_COMMIT", "abc1234")
    assert common.git_commit() == "abc1234"
    monkeypatch.delenv("SDNET_GIT_COMMIT")
    monkeypatch.setenv("PATH", str(ROOT / "no-such-folder"))  # no git to be found
    assert common.git_commit() == "unknown"
