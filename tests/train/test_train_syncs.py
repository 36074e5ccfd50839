"""Host-device syncs of a training epoch, counted on the CPU (issue 29).

On a GPU every read of a device value by the host (`.item()`, `int()`, `float()`, `.tolist()`,
`.numpy()`, a copy to the host) waits for the queue to drain, and building a device tensor from
host data (`torch.tensor(x, device="cuda")`) is a blocking host-to-device copy. The trainer does
one read-back per epoch (sdnet.train.loop.read_back). This test counts, with a TorchDispatchMode, the
operations that are such syncs on CUDA, so a new one in the step fails here without a GPU:
`aten._local_scalar_dense` (item/int/float/bool of a tensor), `aten.lift_fresh` (a tensor made
from host data), copies whose source and target devices differ or that target the host, and
(not dispatched on the CPU, so counted by wrapping them) `Tensor.tolist` and `Tensor.numpy`.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sdnet.train import loop as train
from sdnet.train.gradients import GradientMeter

aten = torch.ops.aten


def _device_of(value: object) -> torch.device | None:
    return value.device if isinstance(value, torch.Tensor) else None


class SyncCounter(TorchDispatchMode):
    """Counts, by kind, the operations that synchronise host and device on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet is aten._local_scalar_dense:
            self.counts["scalar read (item/int/float)"] += 1
        elif packet is aten.lift_fresh:
            self.counts["tensor from host data"] += 1
        elif packet is aten._to_copy:
            target = kwargs.get("device")
            if target is not None and (torch.device(target).type == "cpu"
                                       or torch.device(target) != _device_of(args[0])):
                self.counts["copy to the host / another device"] += 1
        elif packet is aten.copy_ and _device_of(args[0]) != _device_of(args[1]):
            self.counts["copy between devices"] += 1
        return func(*args, **kwargs)


# Modules whose tensors live on the host by construction: the gates' Bernoulli draws come from
# a CPU generator (asserted in the test below), so their `.tolist()` never syncs a device.
HOST_ONLY = {"sdnet.models.gate"}


def _wrapped(counter: SyncCounter, name: str, method):
    def read(self, *args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__") not in HOST_ONLY:
            counter.counts[f"Tensor.{name}"] += 1
        return method(self, *args, **kwargs)
    return read


def count_syncs(monkeypatch: pytest.MonkeyPatch, run) -> Counter[str]:
    counter = SyncCounter()
    with monkeypatch.context() as patch:
        for name in ("tolist", "numpy"):
            patch.setattr(torch.Tensor, name, _wrapped(counter, name, getattr(torch.Tensor, name)))
        with counter:
            run()
    return counter.counts


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _epoch_runner(data: Path, out: Path, images: int, survival: str = "linear"):
    """A function that runs one more training epoch (after a warm-up epoch), as the trainer
    does: gradient meter on, stochastic depth on."""
    cfg = train.check_config(train.TrainConfig(
        data=data, dataset="cifar10", depth=8, out=out, epochs=3, batch_size=32, lr=0.05,
        milestones=[2], limit_train=images, seed=1, device="cpu", survival=survival))
    device = train.resolve_device(cfg.device)
    loaders = train.build_loaders(cfg, train.load_data(cfg), device)
    model = train.build_model(cfg, device)
    optimizer, _ = train.build_optimizer(model, cfg)
    assert model.gate.generator.device.type == "cpu"  # HOST_ONLY's premise
    meter = GradientMeter(model.blocks)
    train.run_epoch(model, loaders.train, optimizer, 0, cfg, device, gradients=meter)

    def run() -> None:
        train.run_epoch(model, loaders.train, optimizer, 1, cfg, device, gradients=meter)
    return run


def test_one_read_back_per_epoch_whatever_its_length(prepared_cifar10, tmp_path, monkeypatch):
    few = count_syncs(monkeypatch, _epoch_runner(prepared_cifar10, tmp_path / "a", images=64))
    many = count_syncs(monkeypatch, _epoch_runner(prepared_cifar10, tmp_path / "b", images=256))
    assert few == many, f"syncs grow with the epoch's steps: {dict(few)} vs {dict(many)}"
    # the one read_back: a copy to the host, then tolist() on the host copy
    assert dict(many) == {"copy to the host / another device": 1, "Tensor.tolist": 1}


def test_a_sync_added_to_the_step_is_caught(prepared_cifar10, tmp_path, monkeypatch):
    """The counter sees a per-step `.item()` (the kind of change this test guards against)."""
    real = train.compute_loss

    def loss_with_item(logits, targets):
        value = real(logits, targets)
        value.item()
        return value
    run = _epoch_runner(prepared_cifar10, tmp_path / "c", images=128)
    monkeypatch.setattr(train, "compute_loss", loss_with_item)
    counts = count_syncs(monkeypatch, run)
    assert counts["scalar read (item/int/float)"] == 128 // 32


def test_tensor_from_host_data_is_caught(monkeypatch):
    def run() -> None:
        torch.tensor(5)
        torch.zeros(3).tolist()
    assert count_syncs(monkeypatch, run) == {"tensor from host data": 1, "Tensor.tolist": 1}
