"""sdnet.train: one run end to end, exact resume after SIGKILL, refusals, NaN, CLI errors, GPU lock.

Runs are ResNet-8 on a few hundred fake images, on the CPU; every run takes a few seconds.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sdnet import cli, events, gpus, spec, train
from sdnet.data import fake_prepared
from sdnet.errors import SdnetError
from sdnet.io import atomic_open, atomic_write_json, atomic_write_text

EPOCHS = 3
# Settings that make ResNet-8 learn the fake classes reliably within 3 short epochs.
QUICK = ["--dataset", "cifar10", "--depth", "8", "--epochs", str(EPOCHS), "--batch-size", "32",
         "--lr", "0.05", "--milestones", "2", "--limit-train", "256", "--seed", "1"]
# A finished run folder: no checkpoint left; event files only with tensorboard installed.
FINISHED_FILES = sorted(["metrics.csv", "model.pt", "run.json", "summary.json", "train.lock"]
                        + (["tensorboard"] if events.summary_writer_class() else []))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU, tiny convolutions run several times faster
    without thread contention. Subprocesses get OMP_NUM_THREADS=1 so they compute the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sdnet_subprocess(args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "sdnet", *args], env=env, text=True, **kwargs)


@pytest.fixture(scope="module")
def data_dir(prepared_cifar10: Path) -> Path:
    """Fake CIFAR-10 prepared through the real download + prepare path (tests/conftest.py)."""
    return Path(prepared_cifar10)


def config(data: Path, out: Path, **overrides) -> train.TrainConfig:
    settings = {"data": data, "dataset": "cifar10", "depth": 8, "out": out, "epochs": EPOCHS,
                "batch_size": 32, "lr": 0.05, "milestones": [2], "limit_train": 256, "seed": 1}
    settings.update(overrides)
    return train.TrainConfig(**settings)


def read_metrics(path: Path) -> list[dict]:
    with open(path / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]


@pytest.fixture(scope="module")
def finished_run(data_dir: Path, tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted 3-epoch run through the CLI, in-process; shared by several tests."""
    out = tmp_path_factory.mktemp("run") / "full"
    start = time.perf_counter()
    assert cli.main(["train", "--data", str(data_dir), *QUICK, "--out", str(out)]) == 0
    print(f"uninterrupted {EPOCHS}-epoch run: {time.perf_counter() - start:.1f} s")
    return out, json.loads((out / "summary.json").read_text())


# ----------------------------------------------------------------------------- a whole run


def test_run_writes_outputs_and_learns(finished_run):
    out, summary = finished_run
    assert sorted(p.name for p in out.iterdir()) == FINISHED_FILES
    rows = read_metrics(out)
    assert list(rows[0]) == list(spec.METRICS_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005])
    for row in rows:
        for column in ("train_error", "val_error", "test_error"):
            assert 0.0 <= float(row[column]) <= 100.0  # percentages
        assert 0.0 < float(row["blocks_computed"]) <= 1.0
    # Chance is 90 % error; the fake classes are easy, so 3 epochs get far below it.
    assert float(rows[-1]["train_error"]) < 50.0
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    weights = torch.load(out / "model.pt", weights_only=True)
    assert summary["parameters"] == sum(v.numel() for k, v in weights.items()
                                        if "running" not in k and "num_batches" not in k)


def test_summary_has_the_documented_fields(finished_run):
    out, summary = finished_run
    rows = read_metrics(out)
    expected = {"settings", "variant", "dataset", "depth", "arch", "seed", "survival", "p_last",
                "parameters", "device", "versions", "epochs", "best_epoch", "best_val_error",
                "test_error_at_best", "final_test_error", "train_seconds", "mean_epoch_seconds",
                "peak_memory_mb", "survival_probabilities", "expected_block_fraction",
                "mean_blocks_computed"}
    assert expected <= set(summary)
    assert set(summary["versions"]) == {"python", "torch", "torchvision", "numpy", "sdnet"}
    assert not {"out", "restart", "on_mismatch", "log_every"} & set(summary["settings"])
    assert summary["settings"]["lr"] == 0.05 and summary["settings"]["milestones"] == [2]
    assert (summary["variant"], summary["arch"], summary["epochs"]) == ("linear", "cifar", 3)
    vals = [float(r["val_error"]) for r in rows]
    best = vals.index(min(vals))
    assert summary["best_epoch"] == best + 1
    assert summary["test_error_at_best"] == float(rows[best]["test_error"])
    assert summary["final_test_error"] == float(rows[-1]["test_error"])
    assert summary["train_seconds"] == pytest.approx(sum(float(r["epoch_seconds"]) for r in rows))
    assert summary["survival_probabilities"] == pytest.approx([5 / 6, 4 / 6, 3 / 6])
    assert summary["expected_block_fraction"] == pytest.approx(2 / 3)
    assert summary["peak_memory_mb"] > 0


def test_complete_run_is_not_trained_again(finished_run, capsys):
    out, summary = finished_run
    before = (out / "metrics.csv").stat().st_mtime_ns
    assert cli.main(["train", "--data", str(summary["settings"]["data"]), *QUICK,
                     "--out", str(out)]) == 0
    assert "already complete" in capsys.readouterr().err
    assert (out / "metrics.csv").stat().st_mtime_ns == before


def test_epoch_linear_follows_the_epoch_and_variant_label_is_kept(data_dir, tmp_path):
    summary = train.train(config(data_dir, tmp_path / "tut", epochs=2, limit_train=64,
                                 survival="epoch-linear", variant="tutorial"))
    assert summary["variant"] == "tutorial" and summary["settings"]["variant"] == "tutorial"
    # Last epoch (index 1 of 2): every block survives with p_L.
    assert summary["survival_probabilities"] == pytest.approx([0.5, 0.5, 0.5])
    assert float(read_metrics(tmp_path / "tut")[0]["blocks_computed"]) == 1.0  # epoch 1: p = 1


def test_without_validation_split_best_epoch_is_the_last(tmp_path):
    data = fake_prepared("cifar10", tmp_path / "data", per_class=10, val_size=0)
    summary = train.train(config(data, tmp_path / "noval", epochs=2, limit_train=64))
    assert [r["val_error"] for r in read_metrics(tmp_path / "noval")] == ["", ""]
    assert summary["best_epoch"] == 2 and summary["best_val_error"] is None
    assert summary["test_error_at_best"] == summary["final_test_error"]


# ----------------------------------------------------------------------------- resume


def _wait_for_checkpoint(proc: subprocess.Popen, path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_sigkill_then_resume_gives_identical_metrics(finished_run, data_dir, tmp_path, capsys):
    full, _ = finished_run
    out = tmp_path / "killed"
    proc = sdnet_subprocess(["train", "--data", str(data_dir), *QUICK, "--out", str(out)],
                            stderr=subprocess.PIPE)
    try:
        _wait_for_checkpoint(proc, out / "checkpoint.pt")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    (out / ".checkpoint.pt.cut_short.tmp").write_bytes(b"half a checkpoint")
    done = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= done < EPOCHS
    assert cli.main(["train", "--data", str(data_dir), *QUICK, "--out", str(out)]) == 0
    assert f"resuming from checkpoint at epoch {done}" in capsys.readouterr().err
    assert without_time(read_metrics(out)) == without_time(read_metrics(full))
    assert sorted(p.name for p in out.iterdir()) == FINISHED_FILES


class Stop(Exception):
    pass


def _stop_after(epoch: int):
    def hook(done: int) -> None:
        if done == epoch:
            raise Stop
    return hook


@pytest.fixture()
def interrupted(data_dir: Path, tmp_path: Path) -> Path:
    """A run folder holding the checkpoint of epoch 1 of 2 (tiny: 64 images)."""
    out = tmp_path / "run"
    with pytest.raises(Stop):
        train.train(config(data_dir, out, epochs=2, limit_train=64), on_epoch_end=_stop_after(1))
    assert (out / "checkpoint.pt").exists() and not (out / "summary.json").exists()
    return out


def test_checkpoint_holds_every_rng_and_loads_weights_only(interrupted):
    ckpt = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 1
    assert {"torch", "numpy", "python", "gates"} <= set(ckpt["rng"])
    assert {"model", "optimizer", "scheduler", "fingerprint", "best_epoch"} <= set(ckpt)


def test_checkpoint_from_other_settings_is_refused(interrupted, data_dir):
    with pytest.raises(SdnetError, match=r"other settings \(lr 0.05 -> 0.02\).*--restart"):
        train.train(config(data_dir, interrupted, epochs=2, limit_train=64, lr=0.02))
    assert (interrupted / "checkpoint.pt").exists()


@pytest.mark.parametrize("flag", [["--restart"], ["--on-mismatch", "restart"]])
def test_checkpoint_from_other_settings_restarts_when_asked(interrupted, data_dir, flag, capsys):
    args = ["train", "--data", str(data_dir), *QUICK, "--epochs", "2", "--limit-train", "64",
            "--lr", "0.02", "--out", str(interrupted), *flag]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "resuming" not in err
    if flag == ["--on-mismatch", "restart"]:
        assert "other settings (lr 0.05 -> 0.02); starting over" in err
    assert [float(r["lr"]) for r in read_metrics(interrupted)] == pytest.approx([0.02, 0.02])
    assert json.loads((interrupted / "summary.json").read_text())["settings"]["lr"] == 0.02


def test_unreadable_checkpoint_is_refused_or_discarded(data_dir, tmp_path):
    out = tmp_path / "torn"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    cfg = config(data_dir, out, epochs=1, limit_train=32)
    with pytest.raises(SdnetError, match="checkpoint.pt is unreadable"):
        train.train(cfg)
    summary = train.train(config(data_dir, out, epochs=1, limit_train=32, on_mismatch="restart"))
    assert summary["epochs"] == 1 and not (out / "checkpoint.pt").exists()


def test_finished_run_with_other_settings_is_refused(finished_run, data_dir):
    out, _ = finished_run
    with pytest.raises(SdnetError, match=r"summary.json was written with other settings "
                                         r"\(seed 1 -> 2\)"):
        train.train(config(data_dir, out, seed=2))


def test_device_and_log_every_do_not_block_resume(interrupted, data_dir, capsys):
    train.train(config(data_dir, interrupted, epochs=2, limit_train=64, device="cpu",
                       log_every=1))
    err = capsys.readouterr().err
    assert "resuming from checkpoint at epoch 1" in err
    assert "epoch 2/2 step 1/2" in err


def _syncs_in_one_epoch(data_dir: Path, out: Path, images: int) -> int:
    import warnings

    cfg = train.check_config(config(data_dir, out, limit_train=images, device="cuda"))
    device = train.resolve_device(cfg.device)
    loaders = train.build_loaders(cfg, train.load_data(cfg), device)
    model = train.build_model(cfg, device)
    optimizer, _ = train.build_optimizer(model, cfg)
    train.run_epoch(model, loaders.train, optimizer, 0, cfg, device)  # warm-up (cudnn benchmark)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train.run_epoch(model, loaders.train, optimizer, 1, cfg, device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_per_step_on_cuda(data_dir, tmp_path):
    """Syncs per epoch do not grow with the number of steps (the end-of-epoch reads only)."""
    few = _syncs_in_one_epoch(data_dir, tmp_path / "a", images=64)
    many = _syncs_in_one_epoch(data_dir, tmp_path / "b", images=256)
    assert few == many <= 4


# ----------------------------------------------------------------------------- NaN


def _nan_at(step: int, real=train.compute_loss):
    calls = {"n": 0}

    def loss(logits, targets):
        calls["n"] += 1
        value = real(logits, targets)
        return value * float("nan") if calls["n"] == step else value
    return loss


def test_nan_loss_names_epoch_and_step(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "compute_loss", _nan_at(step=3))
    out = tmp_path / "nan"
    args = ["train", "--data", str(data_dir), *QUICK, "--limit-train", "128", "--out", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sdnet: error: training loss became NaN/inf at epoch 1, step 3 of 4")
    assert not (out / "summary.json").exists() and not (out / "checkpoint.pt").exists()


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "compute_loss", _nan_at(step=2 + 4))  # 4 steps per epoch
    out = tmp_path / "nan2"
    with pytest.raises(SdnetError, match="epoch 2, step 2 of 4"):
        train.train(config(data_dir, out, limit_train=128))
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (out / "summary.json").exists()


def test_huge_learning_rate_fails_cleanly(data_dir, tmp_path, capsys):
    out = tmp_path / "big"
    args = ["train", "--data", str(data_dir), *QUICK, "--epochs", "1", "--limit-train", "64",
            "--lr", "1e30", "--out", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sdnet: error: training loss became NaN/inf at epoch 1, step ")
    assert not (out / "summary.json").exists()


# ----------------------------------------------------------------------------- settings, CLI


@pytest.mark.parametrize("flags, message", [
    (["--depth", "57"], "depth 57 fits no architecture"),
    (["--p-last", "1.5"], "must be in (0, 1], got 1.5"),
    (["--survival", "sometimes"], "argument --survival: invalid choice: 'sometimes'"),
    (["--epochs", "0"], "argument --epochs: must be a positive integer"),
])
def test_bad_flags_give_one_clear_line(flags, message, tmp_path, capsys):
    args = ["train", "--data", str(tmp_path), "--dataset", "cifar10", "--depth", "8",
            "--out", str(tmp_path / "o"), *flags]
    try:
        status = cli.main(args)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "o").exists()


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SdnetError, match="not found"):
        train.train(config(tmp_path / "nowhere", tmp_path / "o"))


@pytest.mark.parametrize("device, message", [("tpu", "--device"), ("cuda:7", "CUDA|GPU")])
def test_bad_device_is_a_clear_error(device, message):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(SdnetError, match=message):
        train.resolve_device(device)


def test_auto_device_on_a_cpu_machine_is_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert train.resolve_device("auto").type == expected


def test_step_schedule_matches_multistep_with_warmup():
    schedule = train.StepSchedule([5, 3], gamma=0.1, warmup=2)
    assert [schedule(e) for e in range(7)] == pytest.approx([0.1, 0.1, 1, 0.1, 0.1, 0.01, 0.01])
    plain = train.StepSchedule([3, 5], gamma=0.2)
    model = torch.nn.Linear(1, 1)
    opts = [torch.optim.SGD(model.parameters(), lr=0.1) for _ in range(2)]
    ours = torch.optim.lr_scheduler.LambdaLR(opts[0], plain)
    ref = torch.optim.lr_scheduler.MultiStepLR(opts[1], [3, 5], gamma=0.2)
    for _ in range(7):
        assert ours.get_last_lr()[0] == pytest.approx(ref.get_last_lr()[0])
        for opt, sched in zip(opts, (ours, ref)):
            opt.step()
            sched.step()


def test_fingerprint_ignores_device_and_data_path_but_not_data_content():
    base = train.settings_of(train.TrainConfig(data=Path("/a"), dataset="cifar10", depth=8,
                                               out=Path("/o")))
    meta = {"source_md5": "x", "counts": {"train": 10}}
    moved = dict(base, data="/b", device="cuda:1")
    assert train.fingerprint(base, meta) == train.fingerprint(moved, meta)
    assert train.fingerprint(base, meta) != train.fingerprint(base, dict(meta, source_md5="y"))
    assert train.fingerprint(base, meta) != train.fingerprint(dict(base, p_last=0.6), meta)


def test_summary_marks_completion_and_is_json(finished_run):
    out, summary = finished_run
    assert json.loads((out / "summary.json").read_text()) == summary
    assert math.isfinite(summary["final_test_error"])


# ----------------------------------------------------------------------------- GPU lock


def test_gpu_lock_gives_distinct_gpus_then_waits(tmp_path):
    first = gpus.try_acquire_gpu(2, tmp_path)
    second = gpus.try_acquire_gpu(2, tmp_path)
    try:
        assert {first.index, second.index} == {0, 1}
        assert gpus.try_acquire_gpu(2, tmp_path) is None
        messages, naps = [], []
        with pytest.raises(SdnetError, match="all 2 GPUs are held"):
            gpus.acquire_gpu(2, tmp_path, poll_seconds=0.01, timeout=0.05, log=messages.append,
                             sleep=naps.append)
        assert messages and "busy" in messages[0]
        second.release()
        third = gpus.acquire_gpu(2, tmp_path, timeout=0)
        assert third.index == 1
        third.release()
    finally:
        first.release()
        second.release()


def test_gpu_lock_is_held_across_processes_and_dropped_on_exit(tmp_path):
    code = ("import sys, time; from sdnet import gpus; "
            f"g = gpus.try_acquire_gpu(1, {str(tmp_path)!r}); print(g.index, flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"
        assert gpus.try_acquire_gpu(1, tmp_path) is None
    finally:
        proc.kill()
        proc.wait()
    again = gpus.try_acquire_gpu(1, tmp_path)
    assert again is not None and again.index == 0
    again.release()


def test_gpu_lock_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SDNET_LOCK_DIR", str(tmp_path / "locks"))
    held = gpus.try_acquire_gpu(1)
    assert held.path == tmp_path / "locks" / "gpu0.lock"
    held.release()


# ----------------------------------------------------------------------------- io


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x\n")
    atomic_write_json(tmp_path / "sub" / "b.json", {"b": 1, "a": [1]})
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"a": [1], "b": 1}
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "a.txt", "w") as handle:
        handle.write("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "x\n"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "sub"]
