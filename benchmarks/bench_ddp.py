"""One run on several GPUs: step time and gradient-reduction cost for 1, 2, 4, 8 ranks.

The global batch stays `--batch-size` (the trainer's semantics: N ranks split it), so this is
strong scaling: ideal step time on N ranks is the 1-rank time / N. Per world size, the ranks run
these variants interleaved (ABC, BCA, ...; one sample = `--steps` training steps):
- sdnet: exactly the trainer's path, `sdnet.train.loop.run_epoch` over the rank's `TrainShard` with
  `sdnet.distributed.replica.Replica` (the gradients of the parameters a step used, summed in
  fixed buckets after backward; dropped blocks are neither waited for nor sent);
- ddp-unused: torch DistributedDataParallel(find_unused_parameters=True): DDP searches the
  autograd graph for unused parameters every step;
- ddp-zero: DistributedDataParallel without that search, dropped blocks' parameters given a zero
  gradient through `0 * sum(p)` terms (all gradients are sent, dropped ones as zeros);
- local: each rank's forward/backward/step without any reduction (the compute floor: sdnet -
  local is what communication costs).
With one rank only `sdnet` runs (no reduction at all). Reported: median seconds per step, images
per second, speed-up over 1 rank, and the reduction's share of the step.

    .venv/bin/python -m benchmarks.bench_ddp --device cpu --ranks 1 2          # CPU, gloo
    python -m benchmarks.bench_ddp --device cuda --ranks 1 2 4 8 --depth 110    # 2-8 GPUs, NCCL
    .venv/bin/python -m benchmarks.bench_ddp --quick                           # smoke run

On CUDA a world size larger than the visible GPUs is skipped (and said so). Each rank is a process
of its own (torchrun's variables), started by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
VARIANTS = ("sdnet", "ddp-unused", "ddp-zero", "local")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--depth", type=int, default=None, help="default 110 (--quick: 20)")
    p.add_argument("--batch-size", type=int, default=128, help="the global batch")
    p.add_argument("--steps", type=int, default=None, help="steps per sample (default 20)")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.depth is None:
        args.depth = 20 if args.quick else 110
    if args.steps is None:
        args.steps = 4 if args.quick else 20
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    if args.quick:
        args.batch_size = min(args.batch_size, 32)
    return args


# ----------------------------------------------------------------------------- one rank


def _branch_params(model: Any) -> list[list[Any]]:
    """Each gated block's residual-branch parameters (not its shortcut's: that runs anyway)."""
    out = []
    for block in model.blocks:
        skip = {id(p) for p in block.shortcut.parameters()}
        out.append([p for p in block.parameters() if id(p) not in skip])
    return out


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from benchmarks.bench_step import fake_split
    from sdnet import data
    from sdnet.distributed.replica import Replica, gate_pattern
    from sdnet.train import device as devices
    from sdnet.train import loop as train

    config = train.TrainConfig(data="unused", dataset="cifar10", depth=args.depth, out="unused",
                               survival="linear", p_last=0.5, batch_size=args.batch_size,
                               device=args.device.split(":")[0],
                               precision="float32" if args.no_amp else "bf16",
                               channels_last=not args.no_channels_last, epochs=1)
    replica = Replica.start(config)
    world = replica.world
    device = replica.device or torch.device(args.device)
    devices.setup_device(device)
    common.apply_threads(args)
    images, labels = fake_split(args.batch_size * args.steps)
    loader = data.DeviceLoader(images, labels, batch_size=args.batch_size, device=device,
                               mean=MEAN, std=STD, augment=True, shuffle=True, seed=0,
                               channels_last=config.channels_last)
    shard = replica.train_shard(loader)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)
        if world.many:
            dist.barrier()

    def plain_loop(model: Any, optimizer: Any, forward: Any, extra: Any = None) -> Any:
        def run() -> None:
            model.train()
            for step, (x, y) in enumerate(shard.batches(0)):
                with devices.autocast(config.precision == "bf16", device):
                    logits = forward(x)
                loss = F.cross_entropy(logits.float(), y)
                if world.many:
                    loss = loss * (y.shape[0] / shard.global_batch(step))
                if extra is not None:
                    loss = loss + extra()
                optimizer.zero_grad(set_to_none=False)
                loss.backward()
                optimizer.step()
        return run

    variants: dict[str, Any] = {}
    reduce_s: list[float] = []
    sent: list[int] = []
    if "sdnet" in args.variants or not world.many:
        model = replica.prepare(train.build_model(config, device))
        optimizer, _ = train.build_optimizer(model, config)
        all_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        if world.many:  # time the reduction itself, and count the gradient bytes it sends
            reduce = replica.after_backward

            def timed_reduce(epoch: int, step: int) -> None:
                sent.append(sum(p.numel() * p.element_size()
                                for p, used in zip(replica._params, replica._used) if used))
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                reduce(epoch, step)
                if cuda:
                    torch.cuda.synchronize(device)
                reduce_s.append(time.perf_counter() - start)

            replica.after_backward = timed_reduce
        variants["sdnet"] = lambda: train.run_epoch(model, shard, optimizer, 0, config, device,
                                                    replica=replica)
    if world.many:
        import warnings

        from torch.nn.parallel import DistributedDataParallel as DDP

        warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)

        ids = [device.index] if cuda else None
        if "ddp-unused" in args.variants:
            m1 = train.build_model(config, device)
            d1 = DDP(m1, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False)
            o1, _ = train.build_optimizer(m1, config)
            variants["ddp-unused"] = plain_loop(m1, o1, d1)
        if "ddp-zero" in args.variants:
            m2 = train.build_model(config, device)
            d2 = DDP(m2, device_ids=ids, find_unused_parameters=False, broadcast_buffers=False)
            o2, _ = train.build_optimizer(m2, config)
            branches = _branch_params(m2)

            def zero_terms() -> Any:
                gates = gate_pattern(m2) or []
                dropped = [p for params, on in zip(branches, gates) if not on for p in params]
                return sum((p.sum() for p in dropped), torch.zeros((), device=device)) * 0.0

            variants["ddp-zero"] = plain_loop(m2, o2, d2, zero_terms)
        if "local" in args.variants:
            m3 = train.build_model(config, device)
            o3, _ = train.build_optimizer(m3, config)
            variants["local"] = plain_loop(m3, o3, m3)
    cpu: dict[str, list[float]] = {name: [] for name in variants}

    def timed(name: str, fn: Any) -> Any:
        """Also the process's CPU seconds: on a shared machine wall time mostly measures the
        neighbours, CPU time what this rank computed (waiting in a collective costs none)."""
        def run() -> None:
            start = time.process_time()
            fn()
            cpu[name].append(time.process_time() - start)
        return run

    samples = common.interleave({name: timed(name, fn) for name, fn in variants.items()},
                                repeats=args.repeats, warmup=1, sync=sync)
    cpu_per_step = {}
    for name in variants:
        own = statistics.median(cpu[name][1:]) / args.steps  # [0]: the warm-up round
        total = torch.tensor([own], dtype=torch.float64, device=device)
        if world.many:
            dist.all_reduce(total)
        cpu_per_step[name] = float(total)
    paired = {name: common.paired_ratio(samples[name], samples["sdnet"])["paired_median"]
              for name in samples if "sdnet" in samples}
    reduce_share = None
    if world.many and "sdnet" in samples and "local" in samples:
        reduce_share = 1 - samples["local"].median / samples["sdnet"].median
    result = {"world_size": world.size, "per_rank_batch": args.batch_size // world.size,
              "variants": {name: {"step_s": s.median / args.steps,
                                  "images_per_s": args.batch_size * args.steps / s.median,
                                  "cpu_s_per_step_all_ranks": cpu_per_step[name],
                                  "paired_time_vs_sdnet": paired.get(name),
                                  "samples_s": s.seconds}
                           for name, s in samples.items()},
              "reduction_share_of_sdnet_step": reduce_share,
              "sdnet_reduce_s_per_step": statistics.median(reduce_s) if reduce_s else None,
              "sdnet_sent_fraction_of_gradient_bytes":
                  (statistics.mean(sent) / all_bytes) if sent else None,
              "load_avg_1m": os.getloadavg()[0],
              "device": devices.device_name(device), "threads": torch.get_num_threads()}
    if world.is_main:
        args.worker.write_text(json.dumps(result))
    replica.close()


# ----------------------------------------------------------------------------- the driver


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_world(size: int, args: argparse.Namespace, argv: list[str]) -> dict | None:
    from sdnet.jobs.ranks import free_port

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        threads = args.threads or max(1, (os.cpu_count() or 1) // size)
        command = [sys.executable, "-m", "benchmarks.bench_ddp", *argv, "--worker", str(out)]
        if args.device == "cpu" and args.threads is None:
            command += ["--threads", str(threads)]
        procs = []
        for rank in range(size):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank),
                       LOCAL_WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS=str(threads))
            procs.append(subprocess.Popen(command, env=env, cwd=common.ROOT))
        codes = [proc.wait() for proc in procs]
        if any(codes) or not out.exists():
            print(f"world size {size}: ranks exited with {codes}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.worker is not None:
        worker(args)
        return 0
    results: dict[str, Any] = {"worlds": {}, "skipped": {}}
    gpus = _gpu_count() if args.device.startswith("cuda") else None
    for size in args.ranks:
        if gpus is not None and size > gpus:
            results["skipped"][str(size)] = f"only {gpus} GPU(s) visible"
            print(f"world size {size}: skipped, only {gpus} GPU(s) visible")
            continue
        found = run_world(size, args, argv)
        if found is not None:
            results["worlds"][str(size)] = found
    base = (results["worlds"].get("1") or {}).get("variants", {}).get("sdnet", {}).get("step_s")
    rows = []
    for size, found in results["worlds"].items():
        for name, v in found["variants"].items():
            rows.append({"ranks": int(size), "variant": name, "per-rank batch":
                         found["per_rank_batch"], "ms/step": 1000 * v["step_s"],
                         "images/s": v["images_per_s"],
                         "speed-up vs 1 rank": base / v["step_s"] if base else None,
                         "time / sdnet (paired)": v["paired_time_vs_sdnet"],
                         "CPU ms/step (all ranks)": 1000 * v["cpu_s_per_step_all_ranks"],
                         "load": found["load_avg_1m"]})
        share = found.get("reduction_share_of_sdnet_step")
        if share is not None:
            print(f"{size} ranks: sdnet's step minus the no-reduction step is {100 * share:.1f} % "
                  "of the sdnet step")
        if found.get("sdnet_reduce_s_per_step") is not None:
            print(f"{size} ranks: sdnet's gradient reduction takes "
                  f"{1000 * found['sdnet_reduce_s_per_step']:.2f} ms per step (median, waiting for "
                  f"the other ranks included) and sends "
                  f"{100 * found['sdnet_sent_fraction_of_gradient_bytes']:.1f} % of the gradient "
                  "bytes (dropped blocks' are not sent)")
    common.print_table(rows)
    common.write_result(args.out, "ddp", args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
