"""sdnet.train.runfolder: files, the one-trainer lock, run states, disk-full messages; torch-free."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdnet.errors import SdnetError
from sdnet.settings import settings_mismatch
from sdnet.train import runfolder as rf

ROW = {"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_error": 80.0, "val_error": 70.0,
       "test_error": 71.5, "epoch_seconds": 10.0, "blocks_computed": 0.75,
       "grad_first_conv": 0.0123, "val_error_top5": 30.0, "test_error_top5": 31.25}


def rows(n: int, val: bool = True) -> list[dict]:
    out = []
    for epoch in range(1, n + 1):
        out.append(dict(ROW, epoch=epoch, val_error=(70.0 - epoch) if val else None,
                        test_error=71.5 - epoch / 3))
    return out


def write_run(folder: Path, epochs_done: int, epochs: int = 5, settings: dict | None = None,
              done: bool = False) -> Path:
    """A run folder as the trainer leaves it (run.json, metrics.csv, summary.json if done);
    plain writes, without the trainer's fsyncs, so 1,000 of them take little time."""
    settings = {"lr": 0.1, "epochs": epochs, "seed": 0, **(settings or {})}
    folder.mkdir(parents=True, exist_ok=True)
    info = {"settings": settings, "fingerprint": "fp", "epochs": epochs, "host": "h", "pid": 1,
            "started": "2026-12-01T10:00:00+00:00", "start_epoch": 0}
    (folder / rf.RUN_INFO).write_text(json.dumps(info))
    history = rows(epochs_done)
    (folder / rf.METRICS).write_text(rf.metrics_text(history))
    if done:
        summary = {"settings": settings, "epochs": epochs_done,
                   "best_val_error": min(r["val_error"] for r in history),
                   "final_test_error": history[-1]["test_error"],
                   "train_seconds": 10.0 * epochs_done}
        (folder / rf.SUMMARY).write_text(json.dumps(summary))
    return folder


def hold_lock_in_subprocess(folder: Path) -> subprocess.Popen:
    code = ("import sys, time; from sdnet.train import runfolder; "
            f"lock = runfolder.RunLock({str(folder)!r}); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ----------------------------------------------------------------------------- files


def test_missing_files_read_as_absent(tmp_path):
    assert rf.read_summary(tmp_path) is None and rf.read_run_info(tmp_path) is None
    assert rf.read_metrics(tmp_path) == []


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff"])
def test_malformed_summary_names_the_file(tmp_path, text):
    (tmp_path / rf.SUMMARY).write_text(text, encoding="latin-1")
    with pytest.raises(SdnetError, match=str(tmp_path / rf.SUMMARY)):
        rf.read_summary(tmp_path)


def test_metrics_round_trip_exactly_with_types(tmp_path):
    history = rows(3, val=False)
    history[1]["train_loss"] = 1 / 3
    rf.write_metrics(tmp_path, history)
    back = rf.read_metrics(tmp_path)
    assert back == history
    assert isinstance(back[0]["epoch"], int) and back[0]["val_error"] is None


def test_gradients_round_trip_and_a_block_that_never_ran_is_empty(tmp_path):
    history = rows(2)
    history[0][rf.BLOCK_GRADIENTS] = [[0.5, 3], [1 / 3, 1], [None, 0]]
    history[1][rf.BLOCK_GRADIENTS] = [[0.25, 2], [0.125, 2], [0.1, 1]]
    rf.write_gradients(tmp_path, history)
    text = (tmp_path / rf.GRADIENTS).read_text()
    assert text.splitlines()[:4] == ["epoch,block,mean_abs_grad,active_steps", "1,1,0.5,3",
                                     f"1,2,{1 / 3!r},1", "1,3,,0"]
    back = rf.read_gradients(tmp_path)
    assert back[2] == {"epoch": 1, "block": 3, "mean_abs_grad": None, "active_steps": 0}
    assert back[1]["mean_abs_grad"] == 1 / 3 and len(back) == 6
    assert rf.read_gradients(tmp_path / "nowhere") == []


def test_a_row_from_before_a_column_writes_an_empty_cell(tmp_path):
    """A checkpoint written before grad_first_conv existed resumes: its rows lack the key."""
    old = {k: v for k, v in rows(1)[0].items() if k != "grad_first_conv"}
    rf.write_metrics(tmp_path, [old, rows(2)[1]])
    back = rf.read_metrics(tmp_path)
    assert back[0]["grad_first_conv"] is None and back[1]["grad_first_conv"] == 0.0123
    rf.write_gradients(tmp_path, [old])
    assert rf.read_gradients(tmp_path) == []


def test_malformed_metrics_names_the_file(tmp_path):
    (tmp_path / rf.METRICS).write_text("epoch,lr\n1,abc\n")
    with pytest.raises(SdnetError, match=r"metrics.csv is malformed"):
        rf.read_metrics(tmp_path)


def test_writers_are_atomic_and_match_the_readers(tmp_path):
    rf.write_metrics(tmp_path, rows(2))
    rf.write_summary(tmp_path, {"epochs": 2})
    assert rf.read_metrics(tmp_path) == rows(2) and rf.read_summary(tmp_path) == {"epochs": 2}
    (tmp_path / ".checkpoint.pt.abc.tmp").write_bytes(b"cut short")
    rf.remove_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [rf.METRICS, rf.SUMMARY]


def test_run_info_names_host_pid_and_start(tmp_path):
    rf.write_run_info(tmp_path, {"lr": 0.1}, "abc", 500, 7)
    info = rf.read_run_info(tmp_path)
    assert (info["host"], info["pid"], info["epochs"]) == (socket.gethostname(), os.getpid(), 500)
    assert info["start_epoch"] == 7 and info["settings"] == {"lr": 0.1}
    assert abs(rf._unix(info["started"]) - time.time()) < 5


def test_runfolder_does_not_import_torch():
    code = "import sys, sdnet.train.runfolder, sdnet.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- lock


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    with rf.RunLock(tmp_path) as lock:
        with pytest.raises(rf.RunBusyError) as err:
            rf.RunLock(tmp_path, wait=0)
        message = str(err.value)
        assert message.startswith(f"{tmp_path} is being trained by host {socket.gethostname()}, "
                                  f"PID {os.getpid()} (since {lock.holder['since']})")
        assert "\n" not in message
        assert rf.lock_holder(tmp_path) == lock.holder
    assert rf.lock_holder(tmp_path) is None
    rf.RunLock(tmp_path).release()  # free again


def test_lock_is_held_across_processes_and_dies_with_its_process(tmp_path):
    proc = hold_lock_in_subprocess(tmp_path)
    try:
        with pytest.raises(rf.RunBusyError, match=f"PID {proc.pid} "):
            rf.RunLock(tmp_path, wait=0)
        assert rf.lock_holder(tmp_path)["pid"] == proc.pid
        assert rf.run_status(tmp_path).state == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The lock file still names the dead process; that text is ignored.
    assert json.loads((tmp_path / rf.LOCK).read_text())["pid"] == proc.pid
    assert rf.lock_holder(tmp_path) is None
    assert rf.run_status(tmp_path).state == "not started"
    rf.RunLock(tmp_path).release()


def test_stale_lock_file_of_a_dead_pid_never_blocks(tmp_path):
    write_run(tmp_path, 2)
    (tmp_path / rf.LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": 999999,
                                                "since": "2026-01-01T00:00:00+00:00"}))
    status = rf.run_status(tmp_path)
    assert (status.state, status.holder, status.eta_seconds) == ("interrupted", None, None)
    with rf.RunLock(tmp_path) as lock:
        assert rf.lock_holder(tmp_path)["pid"] == os.getpid() == lock.holder["pid"]


def test_lock_on_another_host_counts_while_the_run_writes(tmp_path):
    write_run(tmp_path, 2)
    (tmp_path / rf.LOCK).write_text(json.dumps({"host": "node-b", "pid": 42, "since": "x"}))
    now = time.time()
    status = rf.run_status(tmp_path, now=now)
    assert status.state == "running" and status.holder["host"] == "node-b"
    assert status.eta_seconds is not None
    old = now - rf.FRESH_FLOOR_SECONDS - 60
    for name in (rf.LOCK, rf.METRICS):
        os.utime(tmp_path / name, (old, old))
    assert rf.run_status(tmp_path, now=now).state == "interrupted"
    # Epochs of 1,000 s: the window is 3 epochs, so 11 minutes of silence is still running.
    rf.write_metrics(tmp_path, [dict(r, epoch_seconds=1000.0) for r in rows(2)])
    os.utime(tmp_path / rf.METRICS, (old, old))
    assert rf.run_status(tmp_path, now=now).state == "running"


def test_file_system_without_locks_goes_on_unlocked_and_status_uses_freshness(tmp_path,
                                                                              monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    write_run(tmp_path, 2)
    monkeypatch.setattr(rf.fcntl, "flock", no_locks)
    with rf.RunLock(tmp_path) as lock:
        assert lock.unlocked_reason == f"{tmp_path / rf.LOCK} cannot be locked here (No locks " \
                                       "available)"
        assert rf.run_status(tmp_path).state == "running"  # its lock file was just written
        old = time.time() - rf.FRESH_FLOOR_SECONDS - 60
        for name in (rf.LOCK, rf.METRICS):
            os.utime(tmp_path / name, (old, old))
        assert rf.run_status(tmp_path).state == "interrupted"


def test_unwritable_run_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SdnetError, match=r"cannot create the run lock .*file/run/train.lock"):
        rf.RunLock(tmp_path / "file" / "run")


def test_heartbeat_touches_the_lock_file(tmp_path):
    with rf.RunLock(tmp_path) as lock:
        os.utime(tmp_path / rf.LOCK, (1, 1))
        lock.touch()  # within HEARTBEAT_SECONDS of taking it: nothing
        assert (tmp_path / rf.LOCK).stat().st_mtime == 1
        lock.touch(force=True)
        assert time.time() - (tmp_path / rf.LOCK).stat().st_mtime < 5


# ----------------------------------------------------------------------------- state


def test_status_of_each_state(tmp_path):
    assert rf.run_status(tmp_path / "none").state == "not started"
    done = rf.run_status(write_run(tmp_path / "done", 5, done=True))
    assert (done.state, done.epochs_done, done.epochs, done.eta_seconds) == ("done", 5, 5, None)
    assert done.best_val_error == 65.0 and done.test_error == pytest.approx(71.5 - 5 / 3)
    assert done.train_seconds == 50.0
    half = rf.run_status(write_run(tmp_path / "half", 2))
    assert (half.state, half.epochs_done, half.epochs) == ("interrupted", 2, 5)
    assert (half.best_val_error, half.train_seconds) == (68.0, 20.0)
    only_ckpt = tmp_path / "ckpt"
    only_ckpt.mkdir()
    (only_ckpt / rf.CHECKPOINT).write_bytes(b"x")
    assert rf.run_status(only_ckpt).state == "interrupted"


def test_running_status_has_holder_and_eta(tmp_path):
    folder = write_run(tmp_path, 2, epochs=10)
    info = rf.read_run_info(folder)
    info["started"] = "2026-12-01T10:00:00+00:00"
    (folder / rf.RUN_INFO).write_text(json.dumps(info))
    ended = rf._unix("2026-12-01T10:01:00+00:00")  # 2 epochs in 60 s of wall time
    os.utime(folder / rf.METRICS, (ended, ended))
    with rf.RunLock(folder):
        status = rf.run_status(folder)
    assert status.state == "running" and status.holder["pid"] == os.getpid()
    assert status.eta_seconds == pytest.approx(30.0 * 8)  # wall seconds per epoch x epochs left


def test_stale_when_settings_differ_from_expected(tmp_path):
    folder = write_run(tmp_path, 5, done=True)
    assert rf.run_status(folder, {"lr": 0.1, "epochs": 5, "device": "cuda"}).state == "done"
    stale = rf.run_status(folder, {"lr": 0.05, "epochs": 5, "p_last": None})
    assert stale.state == "stale" and stale.mismatch == ["lr 0.1 -> 0.05"]


def test_status_ignores_torn_files(tmp_path):
    folder = write_run(tmp_path, 2)
    (folder / rf.SUMMARY).write_text("{torn")
    (folder / rf.RUN_INFO).write_text("")
    assert rf.run_status(folder).state == "interrupted"


def test_status_of_many_run_folders(tmp_path):
    """(Its speed on 1,000 folders: benchmarks/bench_status.py.)"""
    folders = []
    for i in range(100):
        folders.append(write_run(tmp_path / f"r{i}", 5 if i % 10 else 2, done=bool(i % 10)))
    states = [rf.run_status(f, {"lr": 0.1, "epochs": 5}).state for f in folders]
    assert states.count("done") == 90 and states.count("interrupted") == 10


# ----------------------------------------------------------------------------- settings


def test_settings_mismatch_rules():
    recorded = {"lr": 0.1, "p_last": 0.5, "milestones": [250, 375], "weight_decay": 0.0001,
                "epochs": 500, "device": "cuda", "data": "/a", "survival": "linear",
                "augment": True}
    expected = {"lr": 0.1, "p-last": 0.2, "milestones": (250, 375), "weight_decay": 1e-4,
                "epochs": 500.0, "device": "cpu", "data": "/b", "out": "x", "log_every": 5,
                "restart": True, "on_mismatch": "restart", "survival": None, "seed": 3,
                "augment": False}
    assert settings_mismatch(recorded, expected) == ["augment True -> False",
                                                     "p_last 0.5 -> 0.2", "seed unset -> 3"]
    assert settings_mismatch(recorded, {"milestones": [250]}) == [
        "milestones [250, 375] -> [250]"]


# ----------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
                 "writing file data/0: file write failed: No space left on device"),
])
def test_full_disk_is_one_line_naming_file_and_checkpoint(tmp_path, error):
    with pytest.raises(rf.DiskFullError) as err, rf.no_space_guard(tmp_path / "checkpoint.pt", 7):
        raise error
    message = str(err.value)
    assert message.startswith(f"no space left on device while writing {tmp_path}/checkpoint.pt")
    assert "previous checkpoint (epoch 7) is intact" in message and "\n" not in message


def test_torch_error_with_a_full_disk_as_its_context_is_a_full_disk(tmp_path):
    with pytest.raises(rf.DiskFullError), rf.no_space_guard(tmp_path / "model.pt", 3):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 "
                               "vs 598") from None


def test_other_errors_pass_the_disk_guard(tmp_path):
    with pytest.raises(PermissionError), rf.no_space_guard(tmp_path / "x", 1):
        raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(rf.DiskFullError, match="no epoch had been checkpointed yet"), \
            rf.no_space_guard(tmp_path / "run.json", None):
        raise OSError(errno.ENOSPC, "No space left on device")
