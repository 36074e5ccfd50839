"""A demo-sized ImageNet run through the trainer on the CPU: fake files -> prepare -> JPEG
loader -> gated ResNet-18 -> top-1 and top-5 error in metrics.csv and summary.json (the
loader's resume is tested in test_data_imagenet.py; the trainer's is generic)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from sdnet import spec
from sdnet.data.fake import fake_prepared
from sdnet.train import loop as train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_prepared("imagenet", tmp_path_factory.mktemp("inet-train"))


def _config(data: Path, out: Path, **overrides) -> train.TrainConfig:
    settings = {"data": data, "dataset": "imagenet", "arch": "imagenet", "depth": 18,
                "out": out, "epochs": 2, "batch_size": 16, "lr": 0.01, "milestones": [1],
                "survival": "linear", "p_last": 0.5, "seed": 0, "device": "cpu",
                "precision": "float32", "normalize": "channel", "channels_last": False}
    settings.update(overrides)
    return train.TrainConfig(**settings)


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # about 35 s on a loaded 2-core machine: ResNet-18 at 224x224 on the CPU
def test_tiny_imagenet_run_reports_top1_and_top5(data: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train.train(_config(data, tmp_path / "run"))
        rows = _rows(tmp_path / "run")
        assert list(rows[0]) == list(spec.METRICS_COLUMNS) and len(rows) == 2
        for row in rows:
            top1, top5 = float(row["test_error"]), float(row["test_error_top5"])
            assert 0 <= top5 <= top1 <= 100
            assert row["val_error_top5"] != ""  # 5 validation images
        # 5 classes: every label is in the top 5.
        assert float(rows[-1]["test_error_top5"]) == 0.0
        assert summary["final_test_error_top5"] == 0.0
        assert summary["parameters"] == 11_689_512 - 1000 * 512 - 1000 + 5 * 512 + 5
        assert len(summary["survival_probabilities"]) == 8
    finally:
        torch.set_num_threads(threads)
