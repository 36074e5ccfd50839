"""A run on several GPUs takes every slot of its GPUs (issue 29): with runs_per_gpu k > 1 a
one-GPU trainer can no longer join a GPU that a multi-GPU run is using, nor the reverse."""

from __future__ import annotations

from pathlib import Path

from sdnet.jobs import gpus


def test_a_multi_gpu_run_leaves_no_slot_of_its_gpus(tmp_path: Path) -> None:
    held = gpus.try_acquire_gpus(2, 3, tmp_path)
    try:
        assert [lock.index for lock in held] == [0, 1]
        taken = sorted(p.name for p in tmp_path.iterdir())
        assert len(taken) == 2 * gpus.MAX_SLOTS  # every slot of GPUs 0 and 1
        one = [gpus.try_acquire_gpu(3, tmp_path, slots=4) for _ in range(4)]
        assert [lock.index for lock in one] == [2, 2, 2, 2]  # only GPU 2's slots
        assert gpus.try_acquire_gpu(3, tmp_path, slots=4) is None
        for lock in one:
            lock.release()
    finally:
        for lock in held:
            lock.release()
    again = [gpus.try_acquire_gpu(2, tmp_path, slots=2) for _ in range(4)]
    assert [(lock.index, lock.slot) for lock in again] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    for lock in again:
        lock.release()


def test_a_gpu_with_any_trainer_is_not_free_for_a_multi_gpu_run(tmp_path: Path) -> None:
    sharer = gpus.try_lock_gpu(0, tmp_path, slot=3)  # a trainer in slot 3 of GPU 0 (k >= 4)
    try:
        held = gpus.try_acquire_gpus(2, 3, tmp_path)
        assert [lock.index for lock in held] == [1, 2]
        for lock in held:
            lock.release()
        assert gpus.try_acquire_gpus(3, 3, tmp_path) is None
        # the failed try gave back what it had taken: GPUs 1 and 2 are whole again
        whole = gpus.try_acquire_gpus(2, 3, tmp_path)
        assert [lock.index for lock in whole] == [1, 2]
        for lock in whole:
            lock.release()
    finally:
        sharer.release()
