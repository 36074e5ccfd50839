"""The data set registry: one object per data set, light to import, and everything that reads
from it (spec, the config schema and checks, the shipped config.yaml, the CLI, prepare, fakes)
agreeing with it. A toy data set registered here goes through download -> prepare -> meta.json
without touching any other module: the "Adding a data set" recipe of docs/DESIGN.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sdnet import cli, grid, spec
from sdnet.data import fake_prepared, load_prepared, prepare, registry
from sdnet.data.registry import (
    Dataset,
    DatasetError,
    RawFile,
    counts,
    dataset_names,
    get_dataset,
)
from sdnet.errors import SdnetError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "PIL", "torch", "torchvision", "pandas")


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT)


# --- light to import ------------------------------------------------------------------------

def test_registry_spec_and_grid_import_nothing_heavy() -> None:
    """The Snakefile and `sdnet status` import these at parse time: every fact of every data
    set, and a config with fakes whose sizes come from the data sets' defaults, stay light
    (grid used to import sdnet.data.fake, and so numpy, for a fake without per_class)."""
    code = f"""
import sys
import sdnet.data.registry as registry, sdnet.grid as grid, sdnet.spec as spec
for ds in registry.datasets():
    facts = (ds.title, ds.file_names, ds.url, ds.num_classes, ds.classes, ds.image_size,
             ds.augment, ds.max_val_size, ds.option_schema(), ds.needed_files({{}}),
             ds.fake_counts(), ds.fake_options())
cfg = grid.load_config(["config.yaml"])
cfg["datasets"]["cifar100"].update(fake={{}}, val_size=3999)
cfg["datasets"]["svhn"].update(fake={{}}, val_per_class={{"train": 60, "extra": 40}})
grid.validate(cfg)
print(sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- the registry ---------------------------------------------------------------------------

def test_builtin_names_in_their_order() -> None:
    assert dataset_names()[:4] == ("cifar10", "cifar100", "cinic10", "svhn")
    assert spec.DATASETS == dataset_names()
    assert [ds.name for ds in registry.datasets()] == list(dataset_names())
    assert get_dataset("cifar100").title == "CIFAR-100"
    assert isinstance(get_dataset("cifar100"), type(get_dataset("cifar10")))  # as torchvision


def test_an_unknown_data_set_is_one_line_listing_the_registered_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    valid = ", ".join(dataset_names())
    for call in (lambda: get_dataset("mnist"), lambda: spec.dataset_spec("mnist"),
                 lambda: prepare("mnist", tmp_path, tmp_path / "out")):
        with pytest.raises(SdnetError) as err:
            call()
        assert str(err.value) == f"unknown data set 'mnist'; choose one of {valid}"
    with pytest.raises(spec.SpecError):
        spec.check_dataset("mnist")
    with pytest.raises(SystemExit):  # argparse: one usage line, one error line with the choices
        cli.main(["data", "prepare", "--dataset", "mnist", "--archive", str(tmp_path),
                  "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "invalid choice: 'mnist'" in error and all(name in error for name in dataset_names())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", dataset_names())
def test_each_object_holds_consistent_facts(name: str) -> None:
    ds = get_dataset(name)
    assert ds.name == name and re.fullmatch(registry.NAME_PATTERN, name) and ds.title
    assert len(set(ds.file_names)) == len(ds.files) >= 1
    for raw in ds.files:
        assert re.fullmatch(r"[0-9a-f]{32}", raw.md5), raw
        assert raw.url.startswith(("https://", "http://")) and raw.url.endswith(raw.name)
        assert ds.file_url(raw.name) == raw.url
    if ds.folder:  # one folder holds the files; a mirror folder gets the names appended
        assert all(raw.url == ds.url + raw.name for raw in ds.files)
        assert ds.file_url(ds.file_names[0], "file:///m/") == f"file:///m/{ds.file_names[0]}"
    else:
        assert ds.url == ds.files[0].url and ds.file() == ds.files[0]
        assert ds.file_url(ds.file_names[0], "/mirror/x.tgz") == "/mirror/x.tgz"
    assert ds.classes is None or len(ds.classes) == ds.num_classes
    assert ds.image_size in (32, 64, 224)  # 224: ImageNet (the imagenet network family)
    assert set(ds.options) == set(ds.option_schema())
    assert set(ds.fake_options()) <= set(ds.options)
    assert all(n >= 1 for n in ds.fake_counts().values())
    with pytest.raises(DatasetError, match="choose one of"):
        ds.file("nope.bin")
    with pytest.raises(DatasetError, match=f"{name} takes no colour"):
        ds.split_options(colour=3)


def test_limits_come_from_the_real_sets() -> None:
    assert get_dataset("cifar10").max_val_size == get_dataset("cifar100").max_val_size == 49_999
    assert get_dataset("cinic10").max_val_size == 90_000  # a subset of its valid split
    assert get_dataset("svhn").max_val_size is None  # val_per_class instead
    assert [f.name for f in get_dataset("svhn").needed_files({"use_extra": False})] == [
        "train_32x32.mat", "test_32x32.mat"]
    assert len(get_dataset("svhn").needed_files({})) == 3


def test_register_dataset_refuses_bad_and_taken_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    for bad in ("", "Toy", "toy-set", "9toy"):
        with pytest.raises(DatasetError, match="must match"):
            registry.register_dataset(type("X", (Toy,), {"name": bad})())
    with pytest.raises(DatasetError, match="'cifar10' is already registered"):
        registry.register_dataset(type("X", (Toy,), {"name": "cifar10"})())
    with pytest.raises(DatasetError, match="2 class names for 3 classes"):
        registry.register_dataset(type("X", (Toy,), {"classes": ("a", "b")})())


# --- the config schema and the shipped config.yaml ------------------------------------------

def test_the_schema_enum_and_entries_are_generated_from_the_registry() -> None:
    """The choice made: the enum is generated at validation time (grid.with_datasets), so the
    schema file names no data set at all; the schema that validates lists exactly the registry."""
    text = (ROOT / grid.SCHEMA_RELPATH).read_text()
    assert not [name for name in dataset_names() if re.search(rf"\b{name}\b", text)]
    for ds in registry.datasets():  # nor any official file name
        assert not [f.name for f in ds.files if f.name in text]
    schema = grid._load_schema(None)
    assert schema["$defs"]["dataset_name"]["enum"] == list(dataset_names())
    entries = schema["properties"]["datasets"]["properties"]
    assert list(entries) == list(dataset_names())
    for ds in registry.datasets():
        keys = set(entries[ds.name]["properties"])
        assert keys == {"md5", *ds.options}
        md5 = entries[ds.name]["properties"]["md5"]
        if ds.folder:
            assert md5["propertyNames"]["enum"] == list(ds.file_names)
    defaults = grid.load_config([ROOT / "config.yaml"])["datasets"]["svhn"]["val_per_class"]
    assert defaults == {"train": 400, "extra": 200}  # from the SVHN object


def test_the_shipped_config_has_an_entry_per_data_set_matching_its_object() -> None:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())["datasets"]
    assert sorted(raw) == sorted(dataset_names())
    source_keys = set(yaml.safe_load((ROOT / grid.SCHEMA_RELPATH).read_text())
                      ["$defs"]["source"]["properties"])
    for name, entry in raw.items():
        ds = get_dataset(name)
        assert set(entry) <= {*source_keys, "md5", *ds.options}, name
        assert entry["url"] == ds.url, name
        if ds.folder:
            assert entry["md5"] == {f.name: f.md5 for f in ds.files}, name
        else:
            assert entry["md5"] == ds.files[0].md5, name
        for option in ds.options:
            assert option in entry, f"{name}: config.yaml shows no {option}"
    grid.load_config([ROOT / "config.yaml"], warn=pytest.fail)


def test_config_checks_read_the_objects() -> None:
    cfg = grid.load_config([ROOT / "config.yaml"])
    for overlay, message in [
        ({"cinic10": {"fake": {}, "val_size": 201}},
         ("datasets.cinic10.val_size: 201 does not fit its fake (the default fake has 200 "
          "images to take it from): at most 200 validation images")),
        ({"cifar10": {"fake": {"per_class": 2}, "val_size": 20}}, "at most 19 validation"),
        ({"svhn": {"fake": {"per_class": 3}, "val_per_class": {"train": 4}}},
         "datasets.svhn.val_per_class.train: 4 is more than the 3 images per class"),
    ]:
        with pytest.raises(grid.ConfigError, match=re.escape(message)):
            grid.validate(grid.merge(cfg, {"datasets": overlay}))


# --- a new data set touches no other module -------------------------------------------------

class Toy(Dataset):
    """The smallest data set: one .npz of 8x8 images, classes named in the file."""

    name = "toy"
    title = "Toy"
    files = (RawFile("toy.npz", "https://example.org/toy.npz", "0" * 32),)
    num_classes = 3
    image_size = 8
    augment = False
    fake_per_class = counts(train=4, test=2)
    real_per_class = counts(train=100, test=10)

    def class_names(self, raw: Mapping[str, Path]) -> tuple[str, ...]:
        with np.load(raw["toy.npz"]) as npz:
            return tuple(str(c) for c in npz["classes"])

    def read(self, raw: Mapping[str, Path], options: Mapping[str, Any], *, split_seed: int,
             workers: int) -> dict:
        from sdnet.data.cifar import split_off_val

        with np.load(raw["toy.npz"]) as npz:
            train = npz["train_x"], npz["train_y"]
            test = npz["test_x"], npz["test_y"]
        train, val = split_off_val(train, options["val_size"] or 0, split_seed)
        return {"train": train, **({"val": val} if val else {}), "test": test}

    def write_fake(self, out: Path, per_class: int | None = None, seed: int = 0,
                   full_size: bool = False) -> Path:
        sizes = self.fake_counts(per_class, full_size)
        rng = np.random.default_rng(seed)
        arrays = {f"{split}_{k}": v for split in ("train", "test") for k, v in zip("xy", (
            rng.integers(0, 256, (3 * sizes[split], 8, 8, 3), dtype=np.uint8),
            np.repeat(np.arange(3), sizes[split])))}
        with open(out, "wb") as fh:
            np.savez(fh, classes=np.array(["red", "green", "blue"]), **arrays)
        return out


def test_a_new_data_set_is_one_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    toy = registry.register_dataset(Toy())
    assert spec.DATASETS[-1] == "toy" and spec.dataset_spec("toy") is toy
    schema = grid._load_schema(None)  # the cached schema of the built-in ones is not reused
    assert "toy" in schema["$defs"]["dataset_name"]["enum"]
    assert "toy" in schema["properties"]["datasets"]["properties"]
    folder = fake_prepared("toy", tmp_path, val_size=3)
    data = load_prepared(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["classes"] == ["red", "green", "blue"] and meta["image_size"] == 8
    assert meta["counts"] == {"train": 9, "val": 3, "test": 6} and data.train[0].shape[1:] == \
        (8, 8, 3)
    assert cli.build_parser().parse_args(["data", "fake", "--format", "toy", "--out", "x"])
    monkeypatch.undo()
    assert "toy" not in grid._load_schema(None)["$defs"]["dataset_name"]["enum"]
