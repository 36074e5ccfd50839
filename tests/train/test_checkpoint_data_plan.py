"""checkpoint.pt records which device drew the loader's data plan; a resume elsewhere warns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sdnet.train import checkpoint
from sdnet.train import loop as train

CPU = {"kind": "cpu", "gpu": None}
H100 = {"kind": "cuda", "gpu": "NVIDIA H100 80GB HBM3, 132 multiprocessors"}


class Stop(Exception):
    pass


def _stop_after(epochs: int):
    def hook(epoch: int) -> None:
        if epoch + 1 >= epochs:
            raise Stop
    return hook


@pytest.fixture()
def interrupted(prepared_cifar10: Path, tmp_path: Path) -> Path:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    cfg = train.TrainConfig(data=prepared_cifar10, dataset="cifar10", depth=8, out=out, epochs=2,
                            batch_size=32, lr=0.05, milestones=[1], limit_train=64, seed=1,
                            device="cpu")
    with pytest.raises(Stop):
        train.train(cfg, on_epoch_end=_stop_after(1))
    return out


def test_the_checkpoint_names_the_device_that_drew_the_data(interrupted):
    ckpt = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert ckpt["data_plan"] == CPU


def test_no_warning_on_the_same_device_or_an_old_checkpoint():
    assert checkpoint.data_plan_warning(CPU, dict(CPU)) is None
    assert checkpoint.data_plan_warning(H100, dict(H100)) is None
    assert checkpoint.data_plan_warning(None, H100) is None  # written before the record


@pytest.mark.parametrize("saved, current, words", [
    (CPU, H100, ["on cpu", "on cuda (NVIDIA H100"]),
    (H100, dict(H100, gpu="NVIDIA H200, 132 multiprocessors"), ["H100", "H200"]),
])
def test_another_device_or_gpu_model_warns(saved, current, words):
    message = checkpoint.data_plan_warning(saved, current)
    assert message.startswith("sdnet: warning: ") and "not bit-identical" in message
    assert all(w in message for w in words)


def test_a_resume_on_another_device_says_so(interrupted, prepared_cifar10, capsys):
    """The checkpoint is rewritten as if a GPU had drawn its data plan; resuming on the CPU
    then warns once, and still finishes."""
    path = interrupted / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["data_plan"] = H100
    checkpoint.atomic_torch_save(ckpt, path)
    cfg = train.TrainConfig(data=prepared_cifar10, dataset="cifar10", depth=8, out=interrupted,
                            epochs=2, batch_size=32, lr=0.05, milestones=[1], limit_train=64,
                            seed=1, device="cpu")
    train.train(cfg)
    err = capsys.readouterr().err
    assert err.count("drew their data order and augmentation on cuda (NVIDIA H100") == 1
    assert (interrupted / "summary.json").exists()
