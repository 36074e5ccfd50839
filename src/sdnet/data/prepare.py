"""Raw files -> train/val/test .npz + meta.json, written atomically into a prepared folder.

The data set's object (sdnet.data.registry) checks the split options and turns its raw files
into (images, labels) splits; this module finds the files, builds meta.json and publishes the
folder. Arrays and meta.json (last) go into a temporary folder beside the output that is renamed
into place only when complete, so an interrupted or failed prepare leaves nothing that looks
finished and an earlier prepared folder untouched. Same inputs, same bytes: every reader orders
images deterministically and draws the validation split from its own seeded generator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.data.common import default_workers
from sdnet.data.registry import Dataset, get_dataset
from sdnet.errors import SdnetError

if TYPE_CHECKING:
    from sdnet.data.prepared import Split

PREPARED_NAMES = {"train.npz", "val.npz", "test.npz", "meta.json", "train.jpegs"}


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
    from sdnet.data.prepared import write_meta, write_split

    for name, (images, labels) in splits.items():
        write_split(folder / f"{name}.npz", images, labels, meta["num_classes"],
                    meta["image_size"])
    write_meta(folder / "meta.json", meta)  # last: its presence means the folder is complete


def raw_files(dataset: Dataset, archive: Path, options: dict[str, Any]) -> dict[str, Path]:
    """Official file name -> local path of the files `options` need. `archive` is the archive
    itself (a single-archive data set; any name), or the folder holding the files under their
    official names (`sdnet data download --out`)."""
    needed = dataset.needed_files(options)
    names = ", ".join(f.name for f in needed)
    if archive.is_dir():
        paths = {f.name: archive / f.name for f in needed}
        for name, path in paths.items():
            if not path.is_file():
                flag = f" --file {name}" if dataset.folder else ""
                raise SdnetError(f"{path} not found; run `sdnet data download --dataset "
                                 f"{dataset.name}{flag}` first")
        return paths
    if dataset.folder:
        problem = "is a file" if archive.exists() else "not found"
        raise SdnetError(f"{archive} {problem}: for {dataset.name} --archive is the folder "
                         f"holding {names} (`sdnet data download --dataset {dataset.name} "
                         "--file NAME` puts them there)")
    if not archive.is_file():
        raise SdnetError(f"{archive} not found; run `sdnet data download` first")
    return {needed[0].name: archive}


def prepare(dataset: str, archive: Path | str, out_dir: Path | str, *, split_seed: int = 0,
            workers: int | None = None, **options: Any) -> dict:
    """Turn the downloaded files into the prepared folder `out_dir`; return its meta dict.

    `archive`: the archive file, or the folder holding the data set's files. `options`: the
    data set's split options (None = its default): `val_size` for the single-archive sets,
    `use_extra` and `val_per_class` for SVHN. `workers`: image-decoding processes (default: the
    cores this process may use), for the data sets of image files.
    """
    from sdnet.data.download import md5_of
    from sdnet.data.prepared import build_meta

    ds = get_dataset(dataset)
    options = ds.split_options(**options)
    paths = raw_files(ds, Path(archive), options)
    out_dir = Path(out_dir)
    custom = getattr(ds, "write_prepared", None)  # a data set with its own (resumable) prepare
    if custom is not None:
        return custom(paths, options, out_dir, split_seed=split_seed,
                      workers=workers or default_workers())
    splits = ds.read(paths, options, split_seed=split_seed, workers=workers or default_workers())
    md5s = {name: md5_of(path) for name, path in paths.items()}
    source_md5 = md5s if ds.folder else next(iter(md5s.values()))
    val_count = len(splits["val"][1]) if "val" in splits else 0
    meta = build_meta(ds, splits, source_md5, val_count, split_seed,
                      classes=ds.class_names(paths), **ds.meta_fields(paths, options))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the prepared folder is ordinary data
        _write_prepared(staging, splits, meta)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta
