"""sdnet.distributed: one run on several ranks (CPU, gloo), against one rank, killed, resumed,
refused; the rank environment, the shards, the all-or-none GPU lock; a 2-GPU workflow job.

Runs are ResNet-8 on 128 fake images, 2-3 short epochs; ranks are processes of their own
(`sdnet train --nproc 2`), so each multi-rank run costs a few seconds of start-up per rank.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from sdnet import cli, settings
from sdnet.distributed import world
from sdnet.distributed.shards import EvalShard, TrainShard, part
from sdnet.distributed.world import EveryRankError, World
from sdnet.errors import SdnetError
from sdnet.jobs import gpus
from sdnet.jobs import ranks as launch
from sdnet.train import events
from sdnet.train import loop as train

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--dataset", "cifar10", "--depth", "8", "--batch-size", "32", "--lr", "0.05",
       "--milestones", "1", "--limit-train", "128", "--seed", "1", "--device", "cpu"]
# What a 2-rank run must match a 1-rank run in: float32, no augmentation, plain NCHW (PyTorch's
# CPU batch norm in channels_last is itself ~3e-3 off a float64 reference in its gradients).
EXACT = ["--epochs", "2", "--no-amp", "--no-augment", "--no-channels-last"]
PLAIN_EPOCHS = 3
# A finished run folder, as tests/test_train.py's FINISHED_FILES: one rank or several alike.
FINISHED = sorted(["accounting.json", "evaluations.csv", "final_state.pt", "gradients.csv",
                   "metrics.csv",
                   "model.pt", "run.json", "summary.json", "train.lock"]
                  + (["tensorboard"] if events.summary_writer_class() else []))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread here and in the ranks (OMP_NUM_THREADS=1): a 2-core machine."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


@pytest.fixture(scope="module")
def data_dir(prepared_cifar10: Path) -> Path:
    return Path(prepared_cifar10)


def read_metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]


def gate_lines(folder: Path, rank: int) -> list[str]:
    return (folder / f"rank{rank}.txt").read_text().splitlines()


def train_cli(data: Path, out: Path, *flags: str, trace: Path | None = None) -> int:
    """`sdnet train` in this process (its ranks are processes of their own)."""
    old = os.environ.get("SDNET_GATE_TRACE")
    if trace is not None:
        os.environ["SDNET_GATE_TRACE"] = str(trace)
    try:
        return cli.main(["train", "--data", str(data), *RUN, *flags, "--out", str(out)])
    finally:
        if old is None:
            os.environ.pop("SDNET_GATE_TRACE", None)
        else:
            os.environ["SDNET_GATE_TRACE"] = old


@pytest.fixture(scope="module")
def exact_runs(data_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """The same run on 1 rank and on 2 ranks with sync_bn (float32, no augmentation)."""
    root = tmp_path_factory.mktemp("exact")
    assert train_cli(data_dir, root / "one", *EXACT, trace=root / "gates1") == 0
    start = time.perf_counter()
    assert train_cli(data_dir, root / "two", *EXACT, "--sync-bn", "--nproc", "2",
                     trace=root / "gates2") == 0
    print(f"2-rank run: {time.perf_counter() - start:.1f} s")
    return {"root": root, "one": root / "one", "two": root / "two"}


@pytest.fixture(scope="module")
def plain_two(data_dir: Path, tmp_path_factory) -> Path:
    """An uninterrupted 2-rank run with the defaults (bf16 where native, augmentation,
    channels_last), no sync_bn."""
    root = tmp_path_factory.mktemp("plain")
    assert train_cli(data_dir, root / "run", "--epochs", str(PLAIN_EPOCHS), "--nproc", "2",
                     trace=root / "gates") == 0
    return root


# ----------------------------------------------------------------------------- 2 ranks = 1 rank


@pytest.mark.slow
def test_two_ranks_with_sync_bn_match_one_rank(exact_runs):
    one, two, root = exact_runs["one"], exact_runs["two"], exact_runs["root"]
    # The same gates at every step, on both ranks and in the 1-rank run.
    gates = gate_lines(root / "gates1", 0)
    assert len(gates) == 2 * 4 and all(line.split()[2] for line in gates)
    assert gate_lines(root / "gates2", 0) == gates == gate_lines(root / "gates2", 1)
    assert {line.split()[2] for line in gates} != {"111"}  # some block was dropped
    rows1, rows2 = read_metrics(one), read_metrics(two)
    assert len(rows1) == len(rows2) == 2
    assert float(rows2[0]["train_loss"]) == pytest.approx(float(rows1[0]["train_loss"]),
                                                          rel=1e-4)
    for a, b in zip(rows1, rows2):
        for column in ("train_error", "val_error", "test_error", "blocks_computed", "lr"):
            assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-9), column
    # Final weights close: within 1e-3 of each tensor's scale (measured: ~1e-4, rounding
    # magnified by 8 SGD steps; without sync_bn the same comparison gives ~5e-2).
    w1 = torch.load(one / "model.pt", weights_only=True)
    w2 = torch.load(two / "model.pt", weights_only=True)
    assert w1.keys() == w2.keys()
    for key in w1:
        a, b = w1[key].double(), w2[key].double()
        assert (a - b).abs().max() <= 1e-3 * (1 + a.abs().max()), key


@pytest.mark.slow
def test_a_multi_rank_folder_reads_like_a_one_rank_folder(exact_runs):
    one, two = exact_runs["one"], exact_runs["two"]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir()) \
        == FINISHED
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert (s1["world_size"], s2["world_size"]) == (1, 2)
    assert s2["settings"]["sync_bn"] is True and "nproc" not in s2["settings"]
    assert set(s1) == set(s2)
    assert json.loads((two / "run.json").read_text())["world_size"] == 2
    assert list(read_metrics(two)[0]) == list(read_metrics(one)[0])
    # The report needs no special case; runs.csv carries the world size as one more column.
    from sdnet import report

    root = exact_runs["root"]
    report.aggregate([two], root / "runs.csv", root / "epochs.csv")
    with open(root / "runs.csv", newline="") as handle:
        assert [row["world_size"] for row in csv.DictReader(handle)] == ["2"]


@pytest.mark.slow
def test_status_shows_the_world_size(exact_runs):
    from sdnet.ops import status

    rows = status.folder_rows(exact_runs["root"])
    assert sorted((Path(r.folder).name, r.world_size, r.state) for r in rows) == [
        ("one", 1, "done"), ("two", 2, "done")]
    header = status.render(rows).splitlines()[0].split()
    assert "ranks" in header
    one_only = [r for r in rows if r.world_size == 1]
    assert "ranks" not in status.render(one_only).splitlines()[0].split()
    assert json.loads(status.as_json(rows))[0]["world_size"] in (1, 2)


@pytest.mark.slow
def test_without_sync_bn_two_ranks_train_and_draw_the_same_gates(plain_two, exact_runs):
    rows = read_metrics(plain_two / "run")
    assert [int(r["epoch"]) for r in rows] == list(range(1, PLAIN_EPOCHS + 1))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    gates = gate_lines(plain_two / "gates", 0)
    assert gates == gate_lines(plain_two / "gates", 1)
    # Same seed, same steps: the gates of a 1-rank run, whatever batch norm does.
    assert gates[:8] == gate_lines(exact_runs["root"] / "gates1", 0)
    summary = json.loads((plain_two / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and not summary["settings"]["sync_bn"]


# ----------------------------------------------------------------------------- a rank dies


def _children(pid: int) -> dict[int, int]:
    """rank -> PID of the ranks a launcher started."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                continue
            env = dict(item.split("=", 1) for item in
                       (proc / "environ").read_bytes().decode().split("\0") if "=" in item)
        except (OSError, ValueError, IndexError):
            continue
        if "RANK" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


@pytest.mark.slow
def test_sigkill_of_one_rank_fails_the_job_then_the_rerun_resumes_exactly(
        plain_two, data_dir, tmp_path, capfd):
    out = tmp_path / "killed"
    err_file = tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "sdnet", "train", "--data", str(data_dir), *RUN,
            "--epochs", str(PLAIN_EPOCHS), "--nproc", "2", "--out", str(out)]
    with err_file.open("w") as err:
        proc = subprocess.Popen(args, stderr=err, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists():
            assert proc.poll() is None, err_file.read_text()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        ranks = _children(proc.pid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        rc = proc.wait(timeout=60)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc != 0 and took < 60
    print(f"the job failed {took:.1f} s after SIGKILL of rank 1")
    err_text = err_file.read_text()
    assert f"rank 1 (PID {ranks[1]}) was killed by SIGKILL" in err_text
    assert "Traceback" not in err_text  # rank 0 lost its peer: one line, not a traceback
    assert not Path(f"/proc/{ranks[0]}").exists() or \
        "zombie" in Path(f"/proc/{ranks[0]}/status").read_text()
    assert not (out / "summary.json").exists()
    done = torch.load(out / "checkpoint.pt", weights_only=True)
    assert done["world_size"] == 2 and len(done["rank_rng"]) == 2
    assert 1 <= done["epoch"] < PLAIN_EPOCHS
    # Another world size is refused, one line naming both ...
    capfd.readouterr()
    assert train_cli(data_dir, out, "--epochs", str(PLAIN_EPOCHS)) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written by a run of 2 rank(s), this run has 1" in err[0], err
    # ... the same one resumes and ends as the uninterrupted 2-rank run.
    assert train_cli(data_dir, out, "--epochs", str(PLAIN_EPOCHS), "--nproc", "2") == 0
    err = capfd.readouterr().err
    assert f"resuming from checkpoint at epoch {done['epoch']}" in err
    assert without_time(read_metrics(out)) == without_time(read_metrics(plain_two / "run"))
    assert sorted(p.name for p in out.iterdir()) == FINISHED
    a = torch.load(out / "model.pt", weights_only=True)
    b = torch.load(plain_two / "run" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_starts_the_ranks_of_one_run_too(data_dir, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("no torchrun beside this Python")
    out = tmp_path / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "sdnet", "train",
               "--data", str(data_dir), *RUN, "--epochs", "1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == FINISHED
    assert result.stderr.count("sdnet: done:") == 1  # rank 0 alone tells the story


class Stop(Exception):
    pass


def _stop_after_first(epoch: int) -> None:
    if epoch == 1:
        raise Stop


@pytest.mark.slow
def test_resume_with_more_ranks_is_one_line_naming_both(data_dir, tmp_path, capfd):
    out = tmp_path / "one-rank"
    cfg = train.TrainConfig(data=data_dir, dataset="cifar10", depth=8, out=out, epochs=2,
                            batch_size=32, limit_train=64, milestones=[1], device="cpu")
    with pytest.raises(Stop):
        train.train(cfg, on_epoch_end=_stop_after_first)
    capfd.readouterr()
    rc = cli.main(["train", "--data", str(data_dir), "--dataset", "cifar10", "--depth", "8",
                   "--epochs", "2", "--batch-size", "32", "--limit-train", "64",
                   "--milestones", "1", "--device", "cpu", "--nproc", "2", "--out", str(out)])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith("sdnet: error: ") and "run of 1 rank(s), this run has 2" in err[0]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1  # untouched


def test_a_batch_that_does_not_divide_is_one_line(data_dir, tmp_path, capfd):
    rc = cli.main(["train", "--data", str(data_dir), *RUN, "--batch-size", "30", "--nproc", "4",
                   "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--batch-size 30 does not split evenly over 4 ranks" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_last_batch_smaller_than_the_ranks_is_one_line(data_dir, tmp_path, capfd):
    rc = cli.main(["train", "--data", str(data_dir), *RUN, "--limit-train", "66",
                   "--nproc", "4", "--batch-size", "32", "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "holds 2 of 66 training images" in err[0], err


def test_nproc_under_torchrun_or_srun_is_refused(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "0")
    with pytest.raises(SdnetError, match="already one rank of many"):
        launch.launch(train.TrainConfig(data=data_dir, dataset="cifar10", depth=8,
                                        out=tmp_path / "o"), 2)


def test_nodes_outside_slurm_is_refused(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(SdnetError, match="--nodes 2 needs a Slurm allocation"):
        launch.launch(train.TrainConfig(data=data_dir, dataset="cifar10", depth=8,
                                        out=tmp_path / "o", device="cpu"), 2, 2)


# ----------------------------------------------------------------------------- the environment


def test_rank_and_world_from_torchrun_and_slurm_variables():
    assert world.detect({}) == World()
    torchrun = world.detect({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                             "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"})
    assert (torchrun.rank, torchrun.size, torchrun.local_rank, torchrun.local_size,
            torchrun.master_addr, torchrun.master_port) == (3, 4, 1, 2, "n1", 1234)
    step = {"SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "0",
            "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NODELIST": "gpu[07-08]",
            "SLURM_JOB_ID": "41", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"}
    slurm = world.detect(step)
    assert (slurm.rank, slurm.size, slurm.local_rank, slurm.local_size, slurm.master_addr,
            slurm.source) == (2, 4, 0, 2, "gpu07", "slurm")
    assert slurm.master_port == world.slurm_port(41, 0)
    # A batch script of an --ntasks 2 job is one process, not rank 0 of 2.
    assert world.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "41"}) \
        == World()
    assert world.detect({"RANK": "0", "WORLD_SIZE": "1"}) == World()
    with pytest.raises(SdnetError, match="outside a world of 2"):
        world.detect({"RANK": "2", "WORLD_SIZE": "2"})


@pytest.mark.parametrize("nodelist, first", [("vm", "vm"), ("a1,b2", "a1"),
                                             ("gpu[003-005,9]", "gpu003"), ("n[2]", "n2")])
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert world.first_host(nodelist) == first


def test_only_rank_zero_prints_an_error_every_rank_raises():
    same = EveryRankError("--batch-size 30 does not split evenly over 4 ranks")
    own = SdnetError("cuda:3 is broken")
    assert world.error_line(same, World()) == f"sdnet: error: {same}"
    assert world.error_line(same, World(rank=1, size=4)) is None
    assert world.error_line(own, World(rank=1, size=4)) == \
        "sdnet: error: rank 1 of 4: cuda:3 is broken"


def test_a_rank_that_lost_its_peers_says_so_in_one_line():
    gone = RuntimeError("[/x/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:1957: "
                        "Connection reset by peer. This is typically caused by a remote worker")
    line = world.lost_ranks_line(gone, World(rank=0, size=2))
    assert line == ("sdnet: error: rank 0 of 2: lost the other ranks (Read error "
                    "[127.0.0.1]:1957: Connection reset by peer); stopping")
    assert world.lost_ranks_line(gone, World()) is None  # one rank: a plain traceback
    assert world.lost_ranks_line(RuntimeError("a bug"), World(rank=0, size=2)) is None


def test_slurm_allocation_is_told_from_a_step(monkeypatch):
    assert launch.in_slurm_allocation({"SLURM_JOB_ID": "5"})
    assert not launch.in_slurm_allocation({"SLURM_JOB_ID": "5", "SLURM_STEP_ID": "0"})
    assert not launch.in_slurm_allocation({})
    command = launch.srun_command(4, 2, 3)
    assert command[:6] == ["srun", "--ntasks=4", "--nodes=2", "--ntasks-per-node=2",
                           "--cpus-per-task=3", "--mem=0"]
    assert "--kill-on-bad-exit=1" in command and command[-1] == "sdnet.train.worker"


def test_settings_travel_to_the_ranks_unchanged(tmp_path):
    cfg = train.TrainConfig(data=tmp_path / "d", dataset="cifar10", depth=8, out=tmp_path / "o",
                            milestones=[3, 4], sync_bn=True, augment=None)
    env = {launch.CONFIG_ENV: launch.config_to_env(cfg)}
    back = launch.config_from_env(env)
    assert settings.check_config(back) == settings.check_config(cfg)


def test_sync_bn_off_keeps_fingerprints_of_runs_from_before_it(tmp_path):
    cfg = settings.check_config(train.TrainConfig(data=tmp_path, dataset="cifar10", depth=8,
                                                  out=tmp_path))
    new = settings.settings_of(cfg)
    old = {k: v for k, v in new.items() if k != "sync_bn"}
    meta = {"source_md5": "x"}
    assert settings.fingerprint(new, meta) == settings.fingerprint(old, meta)
    assert settings.fingerprint(dict(new, sync_bn=True), meta) != settings.fingerprint(old, meta)
    assert settings.fingerprint(dict(new, sync_bn=False), meta) == settings.fingerprint(old, meta)
    # A run recorded before the setting is not stale for sync_bn: false, nor for gpus/nodes.
    assert settings.settings_mismatch(old, {"sync_bn": False, "gpus": 4, "nodes": 2}) == []
    assert settings.settings_mismatch(old, {"sync_bn": True}) == [
        "sync_bn unset (False, before the setting) -> True"]
    assert "--sync-bn" not in " ".join(settings.to_flags({"sync_bn": None}))


# ----------------------------------------------------------------------------- the shards


def _loader(images: int, batch: int, augment: bool):
    from sdnet.data import DeviceLoader

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, 32, 32, 3), dtype=torch.uint8, generator=gen)
    y = torch.arange(images) % 10
    return DeviceLoader(x.numpy(), y.numpy(), batch_size=batch, device="cpu", mean=[0.5] * 3,
                        std=[0.25] * 3, augment=augment, shuffle=True, seed=3)


@pytest.mark.parametrize("ranks", [2, 3])
def test_the_ranks_parts_of_each_batch_are_the_full_batch(ranks):
    loader = _loader(70, 16, augment=True)  # last batch: 6 images
    parts = [list(TrainShard(loader, r, ranks).batches(2)) for r in range(ranks)]
    full = list(loader.batches(2))
    assert all(len(p) == len(full) == len(loader) for p in parts)
    for step, (x, y) in enumerate(full):
        assert torch.equal(torch.cat([p[step][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[step][1] for p in parts]), y)
    shard = TrainShard(loader, 0, ranks)
    assert [shard.global_batch(s) for s in range(len(loader))] == [16, 16, 16, 16, 6]


def test_evaluation_parts_cover_the_split_once():
    from sdnet.data import DeviceLoader

    x = torch.randint(0, 256, (23, 32, 32, 3), dtype=torch.uint8)
    y = torch.arange(23) % 10
    loader = DeviceLoader(x.numpy(), y.numpy(), batch_size=5, device="cpu", mean=[0.5] * 3,
                          std=[0.25] * 3, augment=False, shuffle=False)
    shards = [EvalShard(loader, r, 3) for r in range(3)]
    labels = torch.cat([yb for s in shards for _, yb in s.batches()])
    assert torch.equal(labels, y) and {s.num_samples for s in shards} == {23}
    assert [part(23, r, 3) for r in range(3)] == [(0, 7), (7, 15), (15, 23)]


# ----------------------------------------------------------------------------- GPU locks


def test_several_gpus_are_taken_all_or_none(tmp_path):
    first = gpus.try_acquire_gpus(2, 3, tmp_path)
    try:
        assert [lock.index for lock in first] == [0, 1]
        assert gpus.try_acquire_gpus(2, 3, tmp_path) is None
        single = gpus.try_acquire_gpus(1, 3, tmp_path)  # the failed try gave GPU 2 back
        assert [lock.index for lock in single] == [2]
        single[0].release()
    finally:
        for lock in first:
            lock.release()


def test_two_multi_gpu_jobs_never_deadlock(tmp_path):
    """Two 2-GPU jobs on 3 GPUs: one gets its pair, the other waits without holding any and
    gets a pair once the first gives its back."""
    got: dict[str, list] = {}
    release = threading.Event()

    def job(name: str) -> None:
        locks = gpus.acquire_gpus(2, 3, tmp_path, poll_seconds=0.02, timeout=20,
                                  log=lambda _: None)
        got[name] = [lock.index for lock in locks]
        if len(got) == 1:
            release.wait(5)
        for lock in locks:
            lock.release()

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(got) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(got) == 1  # the other waits: 2 + 2 > 3
    release.set()
    for thread in threads:
        thread.join(20)
    assert sorted(got) == ["a", "b"] and all(len(v) == 2 for v in got.values())


@pytest.mark.slow
def test_the_ddp_benchmark_runs_and_writes_its_json(tmp_path):
    """benchmarks/bench_ddp.py on 1 and 2 CPU ranks, tiny sizes (its numbers are not checked)."""
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_ddp", "--quick", "--ranks",
                             "1", "2", "--depth", "8", "--threads", "1", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                            env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"))
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((tmp_path / "ddp-quick.json").read_text())
    worlds = doc["results"]["worlds"]
    assert set(worlds) == {"1", "2"} and set(worlds["1"]["variants"]) == {"sdnet"}
    assert set(worlds["2"]["variants"]) == {"sdnet", "ddp-unused", "ddp-zero", "local"}
    assert all(v["step_s"] > 0 for w in worlds.values() for v in w["variants"].values())


# ----------------------------------------------------------------------------- the workflow


COPIED = ("Snakefile", "config.yaml", "config", "workflow", "profiles", "slurm")
TWO_GPU_CONFIG = """
experiment: {datasets: [cifar10], depths: [8], variants: [stochastic], seeds: [0]}
networks:
  resnet8: {gpus: 2}       # one run on 2 GPUs (here: 2 CPU ranks, device cpu)
train: {epochs: 2, milestones: [1]}
"""
TWO_GPU_RUN = "results/demo/runs/cifar10/resnet8/stochastic/seed0"


@pytest.mark.slow
def test_workflow_runs_a_two_gpu_job_as_one_run(tmp_path):
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / name)
    (tmp_path / "two-gpus.yaml").write_text(TWO_GPU_CONFIG)
    snakemake = Path(sys.executable).with_name("snakemake")
    args = ["--cores", "2", "--resources", "gpu=2", "--configfile", "config/demo.yaml",
            "two-gpus.yaml"]
    dry = subprocess.run([str(snakemake), "-n", "-p", *args, "--", f"{TWO_GPU_RUN}/summary.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         check=False)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "--nproc 2" in dry.stdout and "--gpus" not in dry.stdout
    result = subprocess.run(["timeout", "-s", "INT", "-k", "30", "400", str(snakemake), *args,
                             "--", f"{TWO_GPU_RUN}/summary.json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    run = tmp_path / TWO_GPU_RUN
    assert sorted(p.name for p in run.iterdir()) == sorted([*FINISHED, "train.log"])  # sdnet launch
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
    log = (tmp_path / "results/demo/logs/train_run/cifar10/resnet8/stochastic/seed0.log")
    assert "2 ranks" in log.read_text()
    runs = [p.parent for p in (tmp_path / "results/demo/runs").rglob("summary.json")]
    assert runs == [run]
