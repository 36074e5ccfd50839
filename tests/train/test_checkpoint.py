"""sdnet.train.checkpoint: RNG capture/restore, the checkpoint file, and a full disk while writing it."""

from __future__ import annotations

import contextlib
import errno
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sdnet import models
from sdnet.errors import SdnetError
from sdnet.train import checkpoint, runfolder
from sdnet.train.runfolder import RunState


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build_model(8, survival="linear", p_last=0.5)
    model.gate.manual_seed(3)
    return model


def draws(model: torch.nn.Module) -> tuple:
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(),
            model.gate.draw())


def test_rng_capture_and_restore_replays_every_generator():
    model = small_model()
    state = checkpoint.capture_rng(model)
    first = draws(model)
    checkpoint.restore_rng(state, model)
    assert draws(model) == first


def saved(tmp_path: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, RunState]:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = RunState()
    state.add({"epoch": 1, "val_error": 40.0, "test_error": 41.0})
    checkpoint.save_checkpoint(tmp_path, model, optimizer, scheduler, state, "fp1", {"lr": 0.1})
    return model, optimizer, scheduler, state


def test_checkpoint_round_trip(tmp_path):
    model, optimizer, _, state = saved(tmp_path)
    ckpt = checkpoint.read_checkpoint(checkpoint.checkpoint_path(tmp_path))
    assert (ckpt["fingerprint"], ckpt["epoch"], ckpt["settings"]) == ("fp1", 1, {"lr": 0.1})
    fresh = small_model()
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 1, gamma=0.5)
    back = checkpoint.load_checkpoint(ckpt, fresh, opt2, sched2)
    assert (back.history, back.best_epoch, back.best_val_error) == (state.history, 1, 40.0)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize("content, message", [(b"garbage", "is unreadable"),
                                              (None, "is not an sdnet checkpoint")])
def test_foreign_checkpoint_is_refused(tmp_path, content, message):
    path = tmp_path / "checkpoint.pt"
    if content is None:
        torch.save({"format": 99}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(SdnetError, match=message + ".*--restart"):
        checkpoint.read_checkpoint(path)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """ENOSPC half-way through the write (injected; tests/test_train.py fills a real tmpfs)."""
    saved(tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    real_open = checkpoint.atomic_open

    @contextlib.contextmanager
    def full_disk(path, mode="wb"):
        with real_open(path, mode) as handle:
            class Half:
                def write(self, data):
                    handle.write(bytes(data[:len(data) // 2]))
                    raise OSError(errno.ENOSPC, "No space left on device")
            yield Half()

    monkeypatch.setattr(checkpoint, "atomic_open", full_disk)
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(runfolder.DiskFullError) as err, \
            runfolder.no_space_guard(tmp_path / "checkpoint.pt", 1):
        checkpoint.save_checkpoint(tmp_path, model, optimizer, scheduler, RunState(), "fp2", {})
    assert str(err.value).startswith(f"no space left on device while writing {tmp_path}/"
                                     "checkpoint.pt; the previous checkpoint (epoch 1) is intact")
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left
    assert checkpoint.read_checkpoint(tmp_path / "checkpoint.pt")["fingerprint"] == "fp1"


def test_checkpoints_of_the_gate_in_resnet_era_still_fit():
    """Checkpoints written before sdnet.models became a package (format 1) hold the same
    parameter order (the optimizer state is indexed by it), the same state-dict keys and the gate
    generator's state under rng["gates"]: they resume exactly, so the format did not change."""
    model = small_model()
    block = ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"]
    assert [name for name, _ in model.named_parameters()] == (
        ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
        + [f"blocks.{i}.{name}" for i in range(3) for name in block] + ["fc.weight", "fc.bias"])
    stats = ["running_mean", "running_var", "num_batches_tracked"]
    assert [name for name, _ in model.named_buffers()] == (
        [f"stem.1.{s}" for s in stats]
        + [f"blocks.{i}.{bn}.{s}" for i in range(3) for bn in ("bn1", "bn2") for s in stats])
    gates = checkpoint.capture_rng(model)["gates"]
    assert gates.dtype == torch.uint8 and torch.equal(gates, model.gate.generator.get_state())
    assert checkpoint.CHECKPOINT_FORMAT == 1
