"""sdnet.jobs.gpus with several runs per GPU: k slots per GPU, spread over the GPUs, never k + 1 on
one GPU, a dead holder frees its slot; one run per GPU keeps its lock files; `--device auto`
takes a slot when $SDNET_RUNS_PER_GPU says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sdnet.errors import SdnetError
from sdnet.jobs import gpus
from sdnet.train import device


def test_k_slots_per_gpu_spread_over_the_gpus_then_none(tmp_path: Path) -> None:
    held = [gpus.try_acquire_gpu(2, tmp_path, slots=2) for _ in range(4)]
    try:
        assert [(h.index, h.slot) for h in held] == [(0, 0), (1, 0), (0, 1), (1, 1)]
        assert gpus.try_acquire_gpu(2, tmp_path, slots=2) is None
        # a one-run-per-GPU trainer shares slot 0's file: it cannot add a third trainer
        assert gpus.try_acquire_gpu(2, tmp_path) is None
        assert held[0].path == tmp_path / "gpu0.lock"
        assert held[2].path == tmp_path / "gpu0.slot1.lock"
        with pytest.raises(SdnetError, match="held by 2 `sdnet train` processes each"):
            gpus.acquire_gpu(2, tmp_path, slots=2, timeout=0, log=lambda _: None)
        held[2].release()
        again = gpus.try_acquire_gpu(2, tmp_path, slots=2)
        assert (again.index, again.slot) == (0, 1)
        again.release()
    finally:
        for lock in held:
            lock.release()


def test_a_dead_holder_frees_its_slot(tmp_path: Path) -> None:
    code = ("import sys, time; from sdnet.jobs import gpus; "
            f"locks = [gpus.try_acquire_gpu(1, {str(tmp_path)!r}, slots=2) for _ in range(2)]; "
            "print(*[(g.index, g.slot) for g in locks], flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "(0, 0) (0, 1)"
        assert gpus.try_acquire_gpu(1, tmp_path, slots=2) is None
    finally:
        proc.kill()
        proc.wait()
    slots = [gpus.try_acquire_gpu(1, tmp_path, slots=2) for _ in range(2)]
    assert [s.slot for s in slots] == [0, 1]
    for lock in slots:
        lock.release()


def test_auto_takes_a_slot_when_runs_share_a_gpu(tmp_path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("SDNET_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_GPU_LOCK", None)
    assert device.resolve_device("auto") == torch.device("cuda", 0)  # k = 1: no lock on 1 GPU
    assert device._GPU_LOCK is None
    monkeypatch.setenv("SDNET_RUNS_PER_GPU", "2")
    assert device.resolve_device("auto") == torch.device("cuda", 0)
    first = device._GPU_LOCK
    assert (first.index, first.slot) == (0, 0)
    monkeypatch.setattr(device, "_GPU_LOCK", None)  # as a second process would
    device.resolve_device("auto")
    assert device._GPU_LOCK.slot == 1
    assert gpus.try_acquire_gpu(1, tmp_path, slots=2) is None  # a third waits
    device._GPU_LOCK.release()
    first.release()
    monkeypatch.setenv("SDNET_RUNS_PER_GPU", "9")
    monkeypatch.setattr(device, "_GPU_LOCK", None)
    with pytest.raises(SdnetError, match="from 1 to 8"):
        device.resolve_device("auto")
