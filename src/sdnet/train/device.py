"""Where and how a run computes: the device, bf16 autocast, memory format, peak memory.

bf16 autocast (`amp`) applies on CUDA and on CPUs with native bf16 (avx512_bf16 or AMX): there a
ResNet-110 step takes about 0.6 of the float32 time. On other CPUs bf16 would be emulated and
slower, so `amp` quietly stays off there; summary.json records what was used (`amp_used`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
from pathlib import Path

import torch

from sdnet.console import log
from sdnet.errors import SdnetError
from sdnet.jobs import gpus
from sdnet.train import accounting

_GPU_LOCK: gpus.GpuLock | None = None


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; on a multi-GPU machine without CUDA_VISIBLE_DEVICES,
    `auto` locks a GPU no other `sdnet train` holds (kept for the life of the process); with
    several runs per GPU ($SDNET_RUNS_PER_GPU = k > 1) one of its k slots, on one GPU too."""
    global _GPU_LOCK
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        slots = accounting.runs_per_gpu()
        if (count > 1 or slots > 1) and "CUDA_VISIBLE_DEVICES" not in os.environ:
            if _GPU_LOCK is None:
                _GPU_LOCK = gpus.acquire_gpu(count, slots=slots)
                slot = f" slot {_GPU_LOCK.slot + 1} of {slots}" if slots > 1 else ""
                log(f"sdnet: using GPU {_GPU_LOCK.index}{slot} (lock {_GPU_LOCK.path})")
            return torch.device("cuda", _GPU_LOCK.index)
        return torch.device("cuda", 0)
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SdnetError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type not in ("cpu", "cuda"):
        raise SdnetError(f"unsupported --device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SdnetError(f"--device {name} asked for, but CUDA is not available here")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise SdnetError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
        device = torch.device("cuda", index)
    return device


def device_name(device: torch.device) -> str:
    """GPU model, or the CPU model from /proc/cpuinfo (platform.processor() is often just x86_64)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return accounting.cpu_model()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpuinfo_flags() -> set[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU (avx512_bf16 or AMX tiles): ask torch, else the CPU flags."""
    probes = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is not None for probe in probes):
        return any(probe() for probe in probes if probe is not None)
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo_flags())


def amp_active(amp: bool, device: torch.device) -> bool:
    """Whether `--amp` means bf16 autocast on this device."""
    return bool(amp) and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))


def autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where `amp_active` (no GradScaler needed for bf16), else nothing."""
    if amp_active(amp, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(channels_last: bool, device: torch.device) -> bool:
    """channels_last helps on CPU too (ResNet-110 step ~0.71 vs ~0.9 s, shared/REFERENCE.md)."""
    return bool(channels_last)


def setup_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
