"""Cost under sharing (issue 29): a CPU shared by side-by-side trainers is counted once, the
estimate calibrates with the concurrency the grid will have and counts each trainer's part of
the device, and its JSON names the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_estimate import FakeCalibrator, small_grid

from sdnet.ops import estimate
from sdnet.train import accounting


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_cpu_trainer_counts_its_threads_part_of_the_machine(tmp_path: Path) -> None:
    assert accounting.device_share("cpu", threads=1, cpus=2) == 0.5
    assert accounting.device_share("cpu", threads=4, cpus=2) == 1.0  # never more than all
    assert accounting.device_share("cpu") == 1.0  # threads unknown: the whole CPU
    assert accounting.device_share("cpu", {accounting.RUNS_PER_GPU_ENV: "4"}, threads=2,
                                   cpus=8) == 0.25  # runs_per_gpu is a GPU's, not the CPU's
    clock = Clock()
    folders = [tmp_path / "a", tmp_path / "b"]
    ledgers = [accounting.Ledger(f, "fp", "cpu", "X", clock=clock, threads=1) for f in folders]
    clock.now += 100.0
    for ledger in ledgers:
        ledger.close()
    share = accounting.device_share("cpu", threads=1)
    total = sum(accounting.read_accounting(f)["device_seconds"] for f in folders)
    # two one-thread trainers side by side for 100 s: the machine counted once, when they fill it
    assert total == pytest.approx(2 * 100.0 * share)
    assert accounting.read_accounting(folders[0])["share"] == pytest.approx(share)


@pytest.mark.parametrize(("kind", "runs", "threads", "k", "cores", "expected"), [
    ("cpu", 16, 1, 1, 2, (2, 1 / 8)),   # the demo: --cores 2, cpus 1 -> two side by side
    ("cpu", 16, 2, 1, 2, (1, 2 / 8)),   # cpus 2 on --cores 2: one at a time
    ("cpu", 1, 1, 1, 8, (1, 1 / 8)),    # never more side by side than the grid has runs
    ("cpu", 16, 4, 1, 2, (1, 2 / 8)),   # threads capped by --cores, as the workflow does
    ("cuda", 16, 4, 4, None, (4, 0.25)),
    ("cuda", 2, 4, 4, None, (2, 0.25)),  # 2 runs on k = 4 slots: each still counts 1/4
])
def test_side_by_side_is_what_the_grid_will_run(monkeypatch, kind, runs, threads, k, cores,
                                                expected):
    monkeypatch.setattr(accounting, "available_cpus", lambda: 8)
    copies, share = estimate.side_by_side(kind, runs, threads, k, cores)
    assert (copies, share) == (expected[0], pytest.approx(expected[1]))


def test_the_estimate_calibrates_side_by_side_and_counts_the_share(tmp_path, prepared_cifar10,
                                                                    monkeypatch):
    monkeypatch.setenv("SDNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(accounting, "available_cpus", lambda: 4)
    configs = small_grid(tmp_path, prepared_cifar10)  # 2 runs, cpus 1
    alone, together = FakeCalibrator(), FakeCalibrator()
    one = estimate.estimate(configs, calibrator=alone, cores=1)
    two = estimate.estimate(configs, calibrator=together, cores=2)
    assert {c["copies"] for c in alone.calls} == {1} and one.concurrency == 1
    assert {c["copies"] for c in together.calls} == {2} and two.concurrency == 2
    assert two.calibrated == 2  # another concurrency is another calibration, not the cache's
    assert one.share == two.share == 0.25
    line = two.lines[0]
    assert line.device_hours == pytest.approx(line.epochs * line.epoch_seconds * 0.25 / 3600)
    assert two.wall_hours(1) == pytest.approx(max(x.run_hours for x in two.lines))
    assert one.wall_hours(1) == pytest.approx(sum(x.run_hours for x in one.lines))
    objects = json.loads(estimate.as_json(two))
    assert [o["network"] for o in objects[:-1]] == ["resnet8", "resnet8"]
    assert objects[-1]["concurrency"] == 2 and objects[-1]["share"] == 0.25
    text = estimate.render(two, gpus=1)
    assert "2 trainers per device (--cores 2), calibrated together" in text
    assert "2 runs per device at a time" in text


def test_preact_and_plain_networks_are_told_apart_in_the_json(tmp_path, prepared_cifar10,
                                                              monkeypatch):
    monkeypatch.setenv("SDNET_CACHE_DIR", str(tmp_path / "cache"))
    line = estimate.Line("cifar10", 110, "preact-resnet110", "baseline", [object()], 1, 1.0)
    assert line.as_json()["network"] == "preact-resnet110" and line.as_json()["depth"] == 110


@pytest.mark.slow
def test_a_real_side_by_side_calibration(tmp_path) -> None:
    """Two copies of the real calibration in processes of their own: figures come back."""
    from sdnet.ops import calibrate

    settings = {"dataset": "cifar10", "depth": 8, "batch_size": 16, "survival": "linear",
                "p_last": 0.5,
                "epochs": 2, "milestones": [1], "device": "cpu", "amp": False}
    result = calibrate.calibrate(settings, device="cpu", train_images=64, eval_images=32,
                                 threads=1, budget_seconds=0.2, copies=2)
    assert result.step_seconds > 0 and result.eval_image_seconds > 0
    assert result.steps_timed >= 2 * calibrate.MIN_ROUNDS  # both copies, every round
