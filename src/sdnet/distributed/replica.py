"""This process's part in a run: one rank of many, or the whole run (then every call is a no-op).

The trainer calls a `Replica` at the few places where a run of several ranks differs from one
(`sdnet.train.loop`); with one rank each call returns its input, so a 1-rank run computes exactly
what it computed before this package existed.

Gradient reduction (docs/DESIGN.md "One run on several GPUs"): after `backward`, the gradients of
the parameters that took part in this step (a hook on each parameter notes it; a dropped block's
branch does not) are flattened in a fixed order into buckets of at most `BUCKET_BYTES` and summed
with `all_reduce`. Each rank's loss was scaled by its share of the global batch, so the sum is the
gradient of the global batch's mean loss. A dropped block is dropped on every rank (same gate
seed, same draws), so its gradient is zero everywhere: it is neither waited for nor sent, stays
zero, and SGD still applies weight decay and momentum to it, as on one rank. The bucket layout
depends only on which blocks ran, so a resumed run sums in the same order as an uninterrupted
one. Every epoch the ranks compare a digest of their gate patterns and refuse to go on if they
ever differ.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdnet.distributed import world as worlds
from sdnet.distributed.shards import EvalShard, TrainShard
from sdnet.distributed.world import EveryRankError, FollowerStop, World
from sdnet.errors import SdnetError

BUCKET_BYTES = 25 * 2**20
GATE_TRACE_ENV = "SDNET_GATE_TRACE"  # a folder: each rank writes rank<r>.txt, one line per step


def rank_device(name: str, world: World) -> torch.device:
    """The device of a rank: its local rank's GPU (cuda, auto with CUDA), or the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise EveryRankError(f"--device {name} names one device; a run of {world.size} ranks "
                             "takes auto, cuda or cpu (each rank uses its local rank's GPU)")
    if not torch.cuda.is_available():
        raise EveryRankError(f"--device {name} asked for, but CUDA is not available here")
    count = torch.cuda.device_count()
    if count == 1 and world.local_size == 1:
        return torch.device("cuda", 0)
    if world.local_rank >= count or count < world.local_size:
        raise SdnetError(f"{world.local_size} ranks on this node but {count} visible GPU(s); "
                         "NCCL needs one GPU per rank")
    return torch.device("cuda", world.local_rank)


class _NoLock:
    """What a rank > 0 holds instead of the run folder's lock."""

    unlocked_reason = None

    def touch(self, force: bool = False) -> None:
        pass


class NoEvents:
    """What a rank > 0 writes instead of TensorBoard events: nothing."""

    def add(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Replica:
    """One rank's view of the run; `Replica.start(config)` sets up the process group if needed."""

    def __init__(self, world: World, device: torch.device | None = None) -> None:
        self.world = world
        self.device = device
        self._params: list[nn.Parameter] = []
        self._used: list[bool] = []
        self._hooks: list[Any] = []
        self._digest = 0
        self._trace = None
        self._model: nn.Module | None = None
        self._train: TrainShard | None = None

    # ------------------------------------------------------------------------- set-up

    @classmethod
    def single(cls) -> Replica:
        """The whole run in this process."""
        return cls(World())

    @classmethod
    def start(cls, config: Any) -> Replica:
        """Rank 0 of 1, or this rank of the world the environment names (process group up)."""
        world = worlds.detect()
        if not world.many:
            return cls(world)
        worlds.check_batch(config.batch_size, world.size)
        device = rank_device(config.device, world)
        import torch.distributed as dist

        if world.rank > 0:
            from sdnet import console

            console.set_quiet(True)  # rank 0 tells the story
        timeout = datetime.timedelta(seconds=worlds.timeout_seconds())
        options: dict[str, Any] = {}
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(device)
            options["device_id"] = device
        dist.init_process_group(backend, init_method=f"tcp://{world.master_addr}:"
                                f"{world.master_port}", rank=world.rank, world_size=world.size,
                                timeout=timeout, **options)
        return cls(world, device)

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        if self.many:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    @property
    def many(self) -> bool:
        return self.world.many

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def size(self) -> int:
        return self.world.size

    def _broadcast(self, value: Any) -> Any:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    # ------------------------------------------------------------------------- the run folder

    @contextlib.contextmanager
    def run_lock(self, lock_factory: Callable[[], Any]) -> Iterator[Any]:
        """Rank 0 holds the run folder's lock (`lock_factory()`, a RunLock) for the whole run
        and tells the others whether it got it; they hold nothing."""
        if not self.many:
            with lock_factory() as lock:
                yield lock
            return
        if not self.is_main:
            if not self._broadcast(None):
                raise FollowerStop("rank 0 could not lock the run folder")
            yield _NoLock()
            return
        try:
            lock = lock_factory().__enter__()
        except BaseException:
            self._broadcast(False)
            raise
        self._broadcast(True)
        try:
            yield lock
        finally:
            lock.__exit__(None, None, None)

    def agree(self, decide: Callable[[], tuple[dict | None, dict | None]]
              ) -> tuple[dict | None, dict | None]:
        """Rank 0 decides what the folder holds (finished summary, checkpoint, fresh start) and
        hands the answer, the checkpoint included, to the others."""
        if not self.many:
            return decide()
        if not self.is_main:
            answer = self._broadcast(None)
            if answer is None:
                raise FollowerStop("rank 0 stopped the run before training")
            return answer
        try:
            answer = decide()
        except BaseException:
            self._broadcast(None)
            raise
        self._broadcast(answer)
        return answer

    def share(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (the final summary; also a barrier)."""
        return self._broadcast(value) if self.many else value

    def events(self, make: Callable[[], Any]) -> Any:
        return make() if self.is_main else NoEvents()

    # ------------------------------------------------------------------------- data, model

    def shard(self, loaders: Any) -> Any:
        """Each rank's part of the training batches and of the evaluation splits."""
        if not self.many:
            return loaders
        rank, size = self.world.rank, self.world.size
        loaders.train = self.train_shard(loaders.train)
        loaders.val = None if loaders.val is None else EvalShard(loaders.val, rank, size)
        loaders.test = EvalShard(loaders.test, rank, size)
        return loaders

    def train_shard(self, loader: Any) -> Any:
        """This rank's part of every global batch of `loader` (`loader` itself on one rank);
        `backward` weighs each step's loss by it."""
        if not self.many:
            return loader
        worlds.check_last_batch(loader.num_samples, loader.batch_size, self.size)
        self._train = TrainShard(loader, self.world.rank, self.size)
        return self._train

    def prepare(self, model: nn.Module, sync_bn: bool = False) -> nn.Module:
        """Batch norm over the global batch if asked, rank 0's weights on every rank, a note of
        which parameters each step uses, and the gate trace (SDNET_GATE_TRACE)."""
        self._model = model
        trace = os.environ.get(GATE_TRACE_ENV)
        if trace:
            Path(trace).mkdir(parents=True, exist_ok=True)
            self._trace = open(Path(trace) / f"rank{self.world.rank}.txt", "a")  # noqa: SIM115
        if not self.many:
            return model
        if sync_bn:
            from sdnet.distributed import syncbn

            model = syncbn.convert(model)
        self._broadcast_tensors(list(model.parameters()) + list(model.buffers()))
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._used = [False] * len(self._params)
        for index, param in enumerate(self._params):
            self._hooks.append(param.register_post_accumulate_grad_hook(self._noter(index)))
        return model

    def _noter(self, index: int) -> Callable[[torch.Tensor], None]:
        def note(_: torch.Tensor) -> None:
            self._used[index] = True
        return note

    # ------------------------------------------------------------------------- a step

    def backward(self, loss: torch.Tensor, step: int, images: int) -> None:
        """loss.backward(), each rank's loss weighted by its share of the global batch."""
        if not self.many:
            loss.backward()
            return
        assert self._train is not None
        (loss * (images / self._train.global_batch(step))).backward()

    def after_backward(self, epoch: int, step: int) -> None:
        """Sum the gradients of this step's parameters over the ranks (nothing on one rank)."""
        if not self.many and self._trace is None:
            return
        gates = gate_pattern(self._model) if self._model is not None else None
        if self._trace is not None:
            bits = "".join("1" if g else "0" for g in gates) if gates is not None else "?"
            self._trace.write(f"{epoch} {step} {bits}\n")
        if not self.many:
            return
        used = self._used
        self._digest = zlib.crc32(bytes(used) + bytes(gates or ()), self._digest)
        grads = [p.grad for p, u in zip(self._params, used) if u]
        self._used = [False] * len(self._params)
        _all_reduce_buckets(grads)

    # ------------------------------------------------------------------------- an epoch

    def reduce_epoch(self, loss_sum: torch.Tensor, wrong: torch.Tensor, first_bad: torch.Tensor,
                     seen: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """The epoch's sums over all ranks, the first bad step of any; checks that every rank
        drew the same gates all epoch."""
        if not self.many:
            return loss_sum, wrong, first_bad, seen
        import torch.distributed as dist

        sums = torch.stack([loss_sum.double(), wrong.double(),
                            torch.tensor(float(seen), dtype=torch.float64, device=loss_sum.device)])
        dist.all_reduce(sums)
        digest = self._digest
        least = torch.tensor([int(first_bad), digest, -digest], dtype=torch.int64,
                             device=loss_sum.device)
        dist.all_reduce(least, op=dist.ReduceOp.MIN)
        self._digest = 0
        if int(least[1]) != -int(least[2]):
            raise EveryRankError(f"the ranks drew different stochastic-depth gates in epoch "
                                 f"{epoch + 1}; stopping (this is a bug: please report it)")
        return (sums[0].to(loss_sum.dtype), sums[1].round().to(wrong.dtype),
                least[0].to(first_bad.dtype), round(float(sums[2])))

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """`value` summed over the ranks (evaluation's error counts)."""
        if self.many:
            import torch.distributed as dist

            value = value.clone()
            dist.all_reduce(value)
        return value

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's batch-norm statistics on every rank, before evaluating and checkpointing
        (without sync_bn each rank's differ; rank 0's are the run's, as DDP's broadcast would)."""
        if self.many:
            self._broadcast_tensors(list(model.buffers()))

    def gather_rng(self, capture: Callable[[], dict]) -> list[dict] | None:
        """Every rank's RNG states (`capture()` on each), in rank order, for the checkpoint;
        None on one rank."""
        if not self.many:
            return None
        import torch.distributed as dist

        states: list[Any] = [None] * self.size
        dist.all_gather_object(states, capture())
        return states

    def _broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        groups: dict[tuple, list[torch.Tensor]] = {}
        for tensor in tensors:
            groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
        with torch.no_grad():
            for group in groups.values():
                flat = _flatten_dense_tensors([t.contiguous() for t in group])
                dist.broadcast(flat, src=0)
                for tensor, value in zip(group, _unflatten_dense_tensors(flat, group)):
                    tensor.copy_(value)


def _all_reduce_buckets(grads: list[torch.Tensor]) -> None:
    """Sum `grads` over the ranks, in buckets of at most BUCKET_BYTES, in their given order."""
    import torch.distributed as dist

    buckets: list[list[torch.Tensor]] = []
    size = 0
    for grad in grads:
        nbytes = grad.numel() * grad.element_size()
        if not buckets or size + nbytes > BUCKET_BYTES or buckets[-1][0].dtype != grad.dtype:
            buckets.append([])
            size = 0
        buckets[-1].append(grad)
        size += nbytes
    pending = []
    with torch.no_grad():
        for bucket in buckets:
            flat = torch.cat([g.reshape(-1) for g in bucket])
            pending.append((bucket, flat, dist.all_reduce(flat, async_op=True)))
        for bucket, flat, work in pending:
            work.wait()
            offset = 0
            for grad in bucket:
                grad.copy_(flat[offset:offset + grad.numel()].view(grad.shape))
                offset += grad.numel()


def gate_pattern(model: nn.Module) -> list[bool] | None:
    """Which gated blocks ran in the last training forward (`GatedNetwork.gate.last_active`;
    None for a network without a gate)."""
    gate = getattr(model, "gate", None)
    return None if gate is None else list(gate.last_active)
