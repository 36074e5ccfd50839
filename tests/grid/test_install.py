"""An installed sdnet needs no checkout: the config schema ships as package data, so
`sdnet status --configfile FILE` works from any folder once `pip install .` is done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pip_install_then_status_from_another_folder(tmp_path: Path) -> None:
    # A copy of what the package is built from (the build leaves nothing in the checkout).
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # A fresh venv that sees this interpreter's packages (the dependencies, setuptools) through
    # a .pth line, so `--no-deps --no-build-isolation` needs no index.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([str(python), "-c", probe], check=True, capture_output=True,
                             text=True).stdout.strip()
    Path(purelib, "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", str(source)], check=True, env=env, timeout=600)
    # Elsewhere: no checkout, no config.yaml; the installed package, not the one under test.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(ROOT / "config.yaml", elsewhere / "grid.yaml")
    where = subprocess.run([str(python), "-c", "import sdnet; print(sdnet.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv))
    status = subprocess.run([str(venv / "bin" / "sdnet"), "status", "--configfile", "grid.yaml"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert status.returncode == 0, status.stderr
    assert "40 runs: 40 not started" in status.stdout
    bad = elsewhere / "bad.yaml"
    bad.write_text("train: {lr: fast}\n")
    refused = subprocess.run([str(venv / "bin" / "sdnet"), "status", "--configfile",
                              "grid.yaml", "bad.yaml"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2
    assert "train.lr: 'fast' is not of type 'number'" in refused.stderr
