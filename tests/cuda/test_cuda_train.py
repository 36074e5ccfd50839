"""The trainer on a CUDA GPU: its defaults end to end, and one host sync per epoch.

Collected on its own by `pytest -m cuda tests/cuda` (benchmarks/run_gpu.sh): this folder imports
only sdnet's trainer, torch and pytest (no pandas, scipy or matplotlib), so a GPU machine without
the report's packages still runs it. Every test skips without a CUDA device. The CPU twin of the
sync count, which runs in CI, is tests/test_train_syncs.py.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from sdnet.train import loop as train
from sdnet.train import runfolder
from sdnet.train.gradients import GradientMeter

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

EPOCHS = 3
# PyTorch's sync-debug warning for one synchronizing call starts so; its one-time notice that the
# mode "does not yet detect all synchronizing operations" does not, and is not a sync.
SYNC_WARNING = "called a synchronizing CUDA operation"


def config(data: Path, out: Path, **overrides) -> train.TrainConfig:
    settings = {"data": data, "dataset": "cifar10", "depth": 8, "out": out, "epochs": EPOCHS,
                "batch_size": 32, "lr": 0.05, "milestones": [2], "limit_train": 256, "seed": 1,
                "device": "cuda"}
    settings.update(overrides)
    return train.TrainConfig(**settings)


def test_short_run_on_cuda_in_bf16_and_channels_last(prepared_cifar10, tmp_path):
    """The trainer's CUDA defaults end to end: bf16 autocast, channels_last, data on the GPU."""
    summary = train.train(config(prepared_cifar10, tmp_path / "run", depth=20,
                                 survival="linear"))
    assert summary["torch_device"].startswith("cuda") and summary["amp_used"]
    rows = runfolder.read_metrics(tmp_path / "run")
    assert len(rows) == EPOCHS and all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert 0 < summary["mean_blocks_computed"] < 1


def _sync_warnings_in_one_epoch(data: Path, out: Path, images: int) -> list[str]:
    cfg = train.check_config(config(data, out, limit_train=images, survival="linear"))
    device = train.resolve_device(cfg.device)
    loaders = train.build_loaders(cfg, train.load_data(cfg), device)
    model = train.build_model(cfg, device)
    optimizer, _ = train.build_optimizer(model, cfg)
    meter = GradientMeter(model.blocks)  # as the trainer runs: gradient strength on the device
    train.run_epoch(model, loaders.train, optimizer, 0, cfg, device, gradients=meter)  # warm-up
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train.run_epoch(model, loaders.train, optimizer, 1, cfg, device, gradients=meter)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).splitlines()[0] for w in caught if SYNC_WARNING in str(w.message)]


def test_one_host_sync_per_epoch_on_cuda(prepared_cifar10, tmp_path):
    """The epoch's one read-back (sdnet.train.loop.read_back), however many steps it has."""
    few = _sync_warnings_in_one_epoch(prepared_cifar10, tmp_path / "a", images=64)
    many = _sync_warnings_in_one_epoch(prepared_cifar10, tmp_path / "b", images=256)
    assert len(few) == len(many) == 1, f"syncs: {few} / {many}"


def test_the_data_plan_names_the_gpu():
    """What a checkpoint records of the generator that drew the data (sdnet.train.checkpoint)."""
    from sdnet.train import checkpoint

    plan = checkpoint.data_plan_device(torch.device("cuda"))
    assert plan["kind"] == "cuda"
    assert plan["gpu"].startswith(torch.cuda.get_device_name(0))
    assert plan["gpu"].endswith(f"{torch.cuda.get_device_properties(0).multi_processor_count} "
                                "multiprocessors")
