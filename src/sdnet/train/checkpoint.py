"""checkpoint.pt: everything a run needs to continue exactly where it stopped (weights, optimizer,
schedule, every RNG, metrics so far, best-so-far), written atomically after every epoch.

Loaded with `weights_only=True`: the file holds only tensors and plain types, so reading a
checkpoint never runs code from it. Sits beside `sdnet.train.loop` and below it (it imports
`sdnet.train.runfolder` for the run state and file names, never `sdnet.train.loop`).
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sdnet.atomic import atomic_open
from sdnet.console import log
from sdnet.errors import SdnetError
from sdnet.train.runfolder import CHECKPOINT, FINAL_STATE, RunState

if TYPE_CHECKING:
    from sdnet.models import GatedNetwork
    from sdnet.train.gradients import GradientMeter

CHECKPOINT_FORMAT = 1
FINAL_STATE_FORMAT = 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temp file + os.replace, so a kill never leaves a torn file (and a
    failed write, say a full disk, removes its temp file and leaves the old file untouched).

    Serialised in memory first: a full disk then fails in our own write as OSError(ENOSPC),
    not as torch's `inline_container.cc ... unexpected pos` RuntimeError."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getbuffer())


def checkpoint_path(out: Path) -> Path:
    return Path(out) / CHECKPOINT


# ----------------------------------------------------------------------------- data plan


def data_plan_device(device: torch.device) -> dict:
    """What drew the loader's data plan (order, crops, flips: sdnet.data.loader): a generator
    on the training device. A CUDA generator draws other numbers than the CPU one, and, past
    multiprocessors x threads draws (SVHN's 604k images), other numbers on another GPU model;
    so the checkpoint records the device kind and the GPU (name and multiprocessor count)."""
    device = torch.device(device)
    gpu = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = f"{props.name}, {props.multi_processor_count} multiprocessors"
    return {"kind": device.type, "gpu": gpu}


def data_plan_warning(saved: dict | None, current: dict) -> str | None:
    """A warning when a run resumes on a device whose generator draws another data plan; None
    when it matches or the checkpoint predates the record."""
    if not saved or (saved.get("kind"), saved.get("gpu")) == (current["kind"], current["gpu"]):
        return None

    def name(plan: dict) -> str:
        return plan["kind"] + (f" ({plan['gpu']})" if plan.get("gpu") else "")
    return (f"sdnet: warning: checkpoint.pt's epochs drew their data order and augmentation on "
            f"{name(saved)}, this run draws them on {name(current)}: the epochs from here on "
            "see other (equally random) batches than an uninterrupted run would, so the result "
            "is valid but not bit-identical to one")


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------- RNG state


def capture_rng(model: GatedNetwork) -> dict:
    """Every RNG a run touches, as tensors and plain types (loadable with weights_only=True).

    `"gates"` is the gate generator's state, the same entry as before the gate had a module of
    its own, so checkpoints written by earlier versions resume exactly."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": py_gauss},
        "gates": model.gate.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, model: GatedNetwork) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    model.gate.set_rng_state(state["gates"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


# ----------------------------------------------------------------------------- the file


def save_checkpoint(out: Path, model: GatedNetwork, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: RunState, fp: str, settings: dict,
                    gradients: GradientMeter | None = None, *,
                    world_size: int = 1, rank_rng: list[dict] | None = None) -> None:
    """`rank_rng`: every rank's RNG states in rank order (a run of several ranks; rank 0 writes).
    `gradients`: the meter's partial sums (after the ranks' reduction: the same on every rank)."""
    atomic_torch_save({
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fp,
        "settings": settings,
        "epoch": state.epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": capture_rng(model),
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_val_error": state.best_val_error,
        "best_step": state.best_step,
        "best_test_error": state.best_test_error,
        "gradients": gradients.state_dict() if gradients is not None else None,
        "world_size": world_size,
        "data_plan": data_plan_device(_model_device(model)),
        **({"rank_rng": rank_rng} if rank_rng else {}),
    }, checkpoint_path(out))


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint on the CPU; SdnetError if it is not one of ours."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file means the same to the user
        raise SdnetError(f"{path} is unreadable ({type(err).__name__}); delete it or pass "
                         "--restart") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SdnetError(f"{path} is not an sdnet checkpoint (format {CHECKPOINT_FORMAT}); "
                         "delete it or pass --restart")
    return ckpt


def load_checkpoint(ckpt: dict, model: GatedNetwork, optimizer: torch.optim.Optimizer,
                    scheduler: Any, gradients: GradientMeter | None = None,
                    rank: int = 0) -> RunState:
    """Put weights, optimizer, scheduler, (this rank's) RNGs and the gradient sums back; return
    the history and best-so-far."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    rank_rng = ckpt.get("rank_rng")
    restore_rng(rank_rng[rank] if rank_rng else ckpt["rng"], model)
    if gradients is not None:  # a checkpoint from before the meter holds none: zero sums
        gradients.load_state_dict(ckpt.get("gradients"))
    warning = data_plan_warning(ckpt.get("data_plan"), data_plan_device(_model_device(model)))
    if warning and rank == 0:
        log(warning)
    return RunState(history=list(ckpt["history"]), best_epoch=ckpt["best_epoch"],
                    best_val_error=ckpt["best_val_error"], best_step=ckpt.get("best_step"),
                    best_test_error=ckpt.get("best_test_error"))


def save_final_state(out: Path, weights: dict, history: list[dict], summary: dict) -> None:
    """final_state.pt: what the finished run's outputs are made of (model.pt's weights, the
    metrics rows, summary.json), so they can be rewritten without training (`restore_outputs`)."""
    plain = json.loads(json.dumps(summary))  # plain types only (torch.__version__ is not a str)
    atomic_torch_save({"format": FINAL_STATE_FORMAT, "fingerprint": plain["fingerprint"],
                       "settings": plain["settings"], "model": weights, "history": history,
                       "summary": plain}, Path(out) / FINAL_STATE)


def read_final_state(out: Path) -> dict | None:
    """The final state, or None when absent or not readable as one (then it is only ignored:
    the run trains again, nothing is lost that a final state would have saved)."""
    path = Path(out) / FINAL_STATE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (a torn or foreign file means the same: no final state)
        return None
    if not isinstance(state, dict) or state.get("format") != FINAL_STATE_FORMAT:
        return None
    return state
