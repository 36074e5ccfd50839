"""ImageNet's paper numbers and preset: the four top-1 errors, config/paper/imagenet.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from sdnet import report
from sdnet.report import paper

ROOT = Path(__file__).resolve().parents[1]


def test_the_four_imagenet_numbers() -> None:
    imagenet = [r for r in paper.PAPER_RESULTS if r.dataset == "imagenet"]
    assert {(r.survival, r.epochs): r.test_error for r in imagenet} == {
        ("none", 90): 23.06, ("linear", 90): 23.38, ("none", 120): 21.78, ("linear", 120): 21.98}
    assert all(r.arch == "imagenet" and r.depth == 152 and r.source for r in imagenet)
    err = report.paper_test_error
    assert err("imagenet", 152, "none", 1.0, True, arch="imagenet") == 21.78  # the run's end
    assert err("imagenet", 152, "linear", 0.5, True, arch="imagenet") == 21.98
    assert paper.paper_result("imagenet", 152, "linear", 0.5, True, "imagenet",
                              epochs=90).test_error == 23.38
    assert err("imagenet", 152, "none", 1.0, True) is None  # the CIFAR-style ResNet-152
    assert err("imagenet", 50, "none", 1.0, True, arch="imagenet") is None


def test_preset_is_the_papers_recipe() -> None:
    preset = yaml.safe_load((ROOT / "config/paper/imagenet.yaml").read_text())
    exp = preset["experiment"]
    assert exp["datasets"] == ["imagenet"] and exp["variants"] == ["baseline", "stochastic"]
    per = exp["per_dataset"]["imagenet"]
    assert per["networks"] == ["imagenet-resnet152"] or per.get("depths") == [152]
    train = preset["datasets"]["imagenet"]["train"]
    assert train["epochs"] == 120 and train["milestones"] == [30, 60, 90]
    assert train["lr"] == 0.1 and train["weight_decay"] == 1e-4 and train["nesterov"] is True
    assert train["batch_size"] == 128
