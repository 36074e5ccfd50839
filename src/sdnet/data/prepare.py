"""Raw files -> train/val/test .npz + meta.json, written atomically into a prepared folder.

One reader per format (sdnet.data.cifar, .cinic, .svhn) turns the downloaded files into
(images, labels) splits; this module checks the options, builds meta.json and publishes the
folder. Arrays and meta.json (last) go into a temporary folder beside the output that is renamed
into place only when complete, so an interrupted prepare leaves nothing that looks finished.
Same inputs, same bytes: every reader orders images deterministically and draws the validation
split from its own seeded generator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sdnet.data import cifar, cinic, svhn
from sdnet.data.common import dataset_info, default_workers
from sdnet.data.download import md5_of
from sdnet.data.prepared import Split, build_meta, write_meta, write_split
from sdnet.errors import SdnetError

PREPARED_NAMES = {"train.npz", "val.npz", "test.npz", "meta.json"}


def _publish(staging: Path, out_dir: Path) -> None:
    """Rename the finished folder into place, replacing an earlier prepared folder."""
    if out_dir.exists():
        extra = {p.name for p in out_dir.iterdir()} - PREPARED_NAMES
        if extra:
            raise SdnetError(f"{out_dir} holds files prepare did not write ({sorted(extra)[:3]}); "
                             "refusing to replace it: choose an empty or new --out")
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def _write_prepared(folder: Path, splits: dict[str, Split], meta: dict) -> None:
    for name, (images, labels) in splits.items():
        write_split(folder / f"{name}.npz", images, labels, meta["num_classes"])
    write_meta(folder / "meta.json", meta)  # last: its presence means the folder is complete


def _check_options(dataset: str, val_size: int | None, use_extra: bool | None,
                   val_per_class: Mapping[str, int] | None) -> None:
    """Each data set's own split options, and only those."""
    if dataset == "svhn":
        if val_size is not None:
            raise SdnetError("svhn takes no val_size: its validation set is val_per_class images "
                             "of each digit (--val-per-class-train, --val-per-class-extra)")
        return
    if use_extra is not None or val_per_class is not None:
        raise SdnetError(f"use_extra and val_per_class apply to svhn only, not {dataset} "
                         "(use --val-size)")
    if val_size is not None and val_size < 0:
        raise SdnetError(f"val_size must be >= 0, got {val_size}")


def prepare(dataset: str, archive: Path | str, out_dir: Path | str, val_size: int | None = None,
            split_seed: int = 0, workers: int | None = None, *, use_extra: bool | None = None,
            val_per_class: Mapping[str, int] | None = None) -> dict:
    """Turn the downloaded files into the prepared folder `out_dir`; return its meta dict.

    `archive` is the archive file, or for svhn the folder holding its .mat files. svhn takes
    `use_extra` (default True) and `val_per_class` ({"train": 400, "extra": 200} by default)
    instead of `val_size`; `workers` (CINIC-10's PNG decoding processes) is unused elsewhere.
    """
    info = dataset_info(dataset)
    archive, out_dir = Path(archive), Path(out_dir)
    _check_options(dataset, val_size, use_extra, val_per_class)
    shape: dict[str, object] = {}
    if dataset == "svhn":
        if not archive.is_dir():
            problem = "is a file" if archive.exists() else "not found"
            raise SdnetError(f"{archive} {problem}: for svhn --archive is the folder holding "
                             f"{', '.join(info.files)} (`sdnet data download --dataset svhn "
                             "--file NAME` puts them there)")
        use_extra = True if use_extra is None else bool(use_extra)
        per_class = svhn.val_per_class_settings(use_extra, val_per_class)
        splits = svhn.prepare_splits(archive, use_extra, per_class, split_seed)
        used = [svhn.FILES[k] for k in ("train", "test", "extra") if k != "extra" or use_extra]
        source_md5: str | dict[str, str] = {name: md5_of(archive / name) for name in used}
        shape = {"use_extra": use_extra, "val_per_class": per_class}
    else:
        if not archive.is_file():
            raise SdnetError(f"{archive} not found; run `sdnet data download` first")
        if dataset == "cinic10":
            splits = cinic.prepare_splits(archive, val_size, split_seed,
                                          workers or default_workers())
        else:
            splits = cifar.prepare_splits(dataset, archive, val_size, split_seed)
        source_md5 = md5_of(archive)
    val_count = len(splits["val"][1]) if "val" in splits else 0
    meta = build_meta(dataset, splits, source_md5, val_count, split_seed, **shape)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the prepared folder is ordinary data
        _write_prepared(staging, splits, meta)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta
