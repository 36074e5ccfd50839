"""sdnet.grid: config merge, validation, the settings cascade, sweeps and config-time checks.

Pure Python and fast (no Snakemake): the workflow's own dry runs are in test_workflow.py.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sdnet import grid, networks, settings, spec
from sdnet.errors import SdnetError

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "config.yaml"
PRESETS = {"table1": 30, "fig8": 60, "resnet1202": 6, "no-augmentation": 20}
# Every shipped config's run folders and `sdnet train` flags, written by the code from before
# network families joined the run identity (tests/grid/, commit d40b84c).
BEFORE_FAMILIES = ROOT / "tests/grid/runs_before_families.txt"


def config(overlay: dict | None = None, *extra: dict) -> dict:
    """config.yaml merged with overlays, validated (warnings collected in cfg['_warnings'])."""
    cfg = yaml.safe_load(BASE.read_text())
    for part in (overlay or {}, *extra):
        cfg = grid.merge(cfg, part)
    warnings: list[str] = []
    grid.validate(cfg, warn=warnings.append)
    cfg["_warnings"] = warnings
    return cfg


def refused(overlay: dict) -> str:
    with pytest.raises(grid.ConfigError) as info:
        config(overlay)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- merge and load


def test_a_number_given_as_text_hints_at_snakemakes_config_flag() -> None:
    """`snakemake --config experiment='{seeds: [9]}'` hands the 9 over as text."""
    assert "arrive as text" in refused({"experiment": {"seeds": ["9"]}})
    assert "arrive as text" not in refused({"train": {"lr": "fast"}})  # a plain wrong value


def test_merge_is_snakemakes_configfile_merge() -> None:
    base = {"train": {"lr": 0.1, "milestones": [250, 375]}, "fake": None, "keep": 1}
    override = {"train": {"milestones": [2]}, "fake": {"per_class": 3}}
    merged = grid.merge(base, override)
    assert merged == {"train": {"lr": 0.1, "milestones": [2]}, "fake": {"per_class": 3},
                      "keep": 1}
    assert base["train"]["milestones"] == [250, 375]  # inputs untouched
    merged["fake"]["per_class"] = 9
    assert override["fake"]["per_class"] == 3  # no shared nested objects


def test_load_config_merges_files_and_fills_defaults(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("experiment: {datasets: [cifar10], depths: [20], seeds: [7]}\n"
                    "train: {lr: 0.05}\n")
    cfg = grid.load_config([BASE, mine], warn=lambda message: None)
    assert cfg["train"]["lr"] == 0.05 and cfg["train"]["epochs"] == 500
    assert cfg["train_resources"]["runtime"] == 1440  # a schema default
    assert cfg["datasets"]["svhn"]["val_per_class"] == {"train": 400, "extra": 200}
    runs = grid.runs(cfg)
    assert [(r.dataset, r.depth, r.variant, r.seed) for r in runs] == [
        ("cifar10", 20, "baseline", 7), ("cifar10", 20, "stochastic", 7)]
    assert runs[0].folder == "runs/cifar10/resnet20/baseline/seed7"
    assert runs[0].wildcards == {"dataset": "cifar10", "network": "resnet20",
                                 "variant": "baseline", "seed": 7}
    assert (runs[0].network, runs[0].arch) == ("resnet20", "cifar")


def test_load_config_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {lr: [\n")
    with pytest.raises(grid.ConfigError, match=r"broken\.yaml line \d+"):
        grid.load_config([BASE, broken])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: fast}\n")
    with pytest.raises(SdnetError) as info:
        grid.load_config([BASE, bad])
    assert str(info.value) == (f"invalid config ({BASE} + {bad}): train.lr: 'fast' is not of "
                               "type 'number'")
    with pytest.raises(grid.ConfigError, match="cannot read config file"):
        grid.load_config([tmp_path / "absent.yaml"])


def test_the_schema_is_found_from_any_directory(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert grid.find_schema() == ROOT / grid.SCHEMA_RELPATH
    assert len(grid.runs(grid.load_config([BASE]))) == 40


def test_schema_lists_exactly_the_data_sets_of_spec() -> None:
    """The data set parts are generated from the registry (tests/test_data_registry.py)."""
    schema = grid._load_schema(None)
    assert tuple(schema["$defs"]["dataset_name"]["enum"]) == spec.DATASETS
    svhn = schema["properties"]["datasets"]["properties"]["svhn"]["properties"]["md5"]
    assert tuple(svhn["propertyNames"]["enum"]) == spec.dataset_spec("svhn").file_names


# ----------------------------------------------------------------------------- the cascade


def test_cascade_most_specific_wins() -> None:
    cfg = config({
        "train": {"epochs": 10, "lr": 0.1, "batch_size": 64, "gamma": 0.5},
        "datasets": {"cifar10": {"train": {"epochs": 20, "lr": 0.2, "batch_size": 32}}},
        "networks": {"resnet20": {"epochs": 30, "lr": 0.3}},
        "variants": {"stochastic": {"epochs": 40}},
        "experiment": {"datasets": ["cifar10"], "depths": [20], "seeds": [0]},
    })
    stochastic = grid.run_settings(cfg, "cifar10", 20, "stochastic", 0)
    baseline = grid.run_settings(cfg, "cifar10", "20", "baseline", "0")
    assert (stochastic["epochs"], stochastic["lr"], stochastic["batch_size"]) == (40, 0.3, 32)
    assert (baseline["epochs"], baseline["lr"], baseline["gamma"]) == (30, 0.3, 0.5)
    assert baseline["depth"] == 20 and baseline["seed"] == 0 and baseline["variant"] == "baseline"
    other = grid.run_settings(cfg, "cinic10", 110, "baseline", 1)
    assert (other["epochs"], other["lr"]) == (10, 0.1)  # nothing of cifar10's or resnet20's


def test_paper_schedules_follow_the_data_set_and_the_network() -> None:
    cfg = config()
    svhn = grid.run_settings(cfg, "svhn", 152, "stochastic", 0)
    assert (svhn["epochs"], svhn["milestones"], svhn["augment"]) == (50, [30, 35], False)
    big = grid.run_settings(cfg, "cifar10", 1202, "baseline", 0)
    assert (big["epochs"], big["milestones"], big["warmup_epochs"]) == (300, [150, 225], 10)
    assert big["augment"] is True and big["lr"] == 0.1
    plain = grid.run_settings(cfg, "cifar100", 110, "baseline", 0)
    assert (plain["epochs"], plain["milestones"], plain["augment"]) == (500, [250, 375], True)


def test_augment_null_is_the_data_sets_default_and_an_explicit_value_wins() -> None:
    cfg = config({"train": {"augment": False}})
    assert grid.run_settings(cfg, "cifar10", 110, "baseline", 0)["augment"] is False
    cfg = config({"datasets": {"svhn": {"train": {"augment": True}}}})
    assert grid.run_settings(cfg, "svhn", 152, "baseline", 0)["augment"] is True
    assert grid.run_settings(cfg, "cinic10", 110, "baseline", 0)["augment"] is True


def test_per_dataset_axes_replace_the_grid_for_one_data_set() -> None:
    cfg = config({"experiment": {"datasets": ["cifar10", "svhn"], "depths": [110],
                                 "seeds": [0, 1], "per_dataset": {"svhn": {"depths": [152],
                                                                           "seeds": [3]}}}})
    keys = [(r.dataset, r.depth, r.variant, r.seed) for r in grid.runs(cfg)]
    assert keys == [("cifar10", 110, "baseline", 0), ("cifar10", 110, "baseline", 1),
                    ("cifar10", 110, "stochastic", 0), ("cifar10", 110, "stochastic", 1),
                    ("svhn", 152, "baseline", 3), ("svhn", 152, "stochastic", 3)]


# ----------------------------------------------------------------------------- sweeps


def test_a_sweep_expands_into_named_variants_in_a_stable_order() -> None:
    cfg = config({
        "variants": {"linear": {"survival": "linear", "sweep": {"p_last": [0.2, 0.1, 1.0]}},
                     "grid2": {"survival": "uniform",
                               "sweep": {"p_last": [0.5], "milestones": [[1, 2], [3]],
                                         "nesterov": [True, False]}}},
        "experiment": {"datasets": ["cifar10"], "depths": [20], "seeds": [0],
                       "variants": ["baseline", "linear", "grid2"]},
    })
    names = [r.variant for r in grid.runs(cfg)]
    assert names == ["baseline", "linear-p_last0.2", "linear-p_last0.1", "linear-p_last1.0",
                     "grid2-milestones1_2-nesterovtrue-p_last0.5",
                     "grid2-milestones1_2-nesterovfalse-p_last0.5",
                     "grid2-milestones3-nesterovtrue-p_last0.5",
                     "grid2-milestones3-nesterovfalse-p_last0.5"]
    settings = grid.run_settings(cfg, "cifar10", 20, "linear-p_last0.1", 0)
    assert settings["p_last"] == 0.1 and settings["survival"] == "linear"
    assert "sweep" not in settings and settings["variant"] == "linear-p_last0.1"
    assert grid.run_settings(cfg, "cifar10", 20, "grid2-milestones3-nesterovfalse-p_last0.5",
                             0)["milestones"] == [3]
    assert grid.expand_variant(cfg, "baseline") == ["baseline"]
    assert set(grid.variants(cfg)) >= {"stochastic", "linear-p_last1.0"}
    with pytest.raises(grid.ConfigError, match="no variant 'linear'"):
        grid.run_settings(cfg, "cifar10", 20, "linear", 0)  # only the expansions are runs


def sweep(values: dict, **more: dict) -> dict:
    return {"variants": {"lin": {"survival": "linear", "sweep": values}, **more},
            "experiment": {"variants": ["lin"]}}


@pytest.mark.parametrize(("overlay", "expected"), [
    (sweep({"p_last": [0.1, 1.5]}), ("variants.lin.sweep.p_last[1]: 1.5 is greater than the "
                                    "maximum of 1")),
    (sweep({"epochs": [10, 0]}), "variants.lin.sweep.epochs[1]: 0 is less than the minimum"),
    (sweep({"p_last": [0.1, 0.1]}), "variants.lin.sweep.p_last: [0.1, 0.1] has non-unique"),
    (sweep({"p_last": []}), "variants.lin.sweep.p_last: [] should be non-empty"),
    (sweep({"p_lst": [0.1]}), ("variants.lin.sweep: unknown key 'p_lst'; did you mean "
                              "'p_last'?")),
    (sweep({"p_last": [0.1]}, **{"lin-p_last0.1": {"survival": "none"}}),
     "the variant name 'lin-p_last0.1' is also made by variants.lin"),
    (sweep({"p_last": [0.5], "lr": [0.1]},
           **{"lin-lr0.1": {"survival": "linear", "sweep": {"p_last": [0.5]}}}),
     "variants.lin-lr0.1: the variant name 'lin-lr0.1-p_last0.5' is also made by variants.lin"),
    (sweep({"device": ["cuda:0"]}), "'lin-devicecuda:0' is not a valid folder name"),
    (sweep({"survival": ["linear", "dropout"]}), ("variants.lin.sweep.survival[1]: 'dropout' "
                                                 "is not one of")),
], ids=["range", "epochs", "duplicate", "empty", "unknown-key", "clash-defined",
        "clash-expansions", "bad-name", "bad-rule"])
def test_sweep_mistakes_are_refused_in_one_line(overlay: dict, expected: str) -> None:
    assert expected in refused(overlay)


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize(("overlay", "expected"), [
    ({"train": {"lrr": 0.2}}, "train: unknown key 'lrr'; did you mean 'lr'?"),
    ({"networks": {"resnet1202": {"epoch": 3}}},
     "networks.resnet1202: unknown key 'epoch'; did you mean 'epochs'?"),
    ({"datasets": {"svhn": {"train": {"milestone": [3]}}}},
     "datasets.svhn.train: unknown key 'milestone'; did you mean 'milestones'?"),
    ({"experiment": {"depths": [20, 57]}}, "experiment.depths: depth 57 fits no architecture"),
    ({"experiment": {"datasets": ["svhn"], "per_dataset": {"svhn": {"depths": [57]}}}},
     "experiment.per_dataset.svhn.depths: depth 57 fits no architecture"),
    ({"networks": {"resnet57": {"epochs": 3}}}, "networks.resnet57: depth 57 fits no"),
    ({"experiment": {"per_dataset": {"cifar10": {"variants": ["nope"]}}}},
     "experiment.per_dataset.cifar10.variants lists 'nope', which is not defined"),
    ({"datasets": {"cifar10": {"val_size": 60000}}},
     "datasets.cifar10.val_size: 60000 does not fit CIFAR-10: at most 49999 validation images"),
    ({"datasets": {"cinic10": {"val_size": 90001}}}, "at most 90000 validation images"),
    ({"datasets": {"cifar100": {"fake": {"per_class": 3}, "val_size": 300}}},
     "datasets.cifar100.val_size: 300 does not fit its fake (fake.per_class gives 300 images"),
    ({"datasets": {"svhn": {"fake": {"per_class": 5}, "val_per_class": {"train": 5,
                                                                          "extra": 6}}}},
     ("datasets.svhn.val_per_class.extra: 6 is more than the 5 images per class in extra of its "
     "fake")),
    ({"datasets": {"svhn": {"fake": {}}}},  # the fake's default: 60 per class in train
     "datasets.svhn.val_per_class.train: 400 is more than the 60 images per class in train"),
    ({"datasets": {"cifar10": {"url": "ftp://mirror/cifar-10-python.tar.gz"}}},
     "datasets.cifar10.url: unknown URL scheme 'ftp'"),
    ({"datasets": {"svhn": {"url": "s3://bucket/svhn/"}}}, "unknown URL scheme 's3'"),
    ({"datasets": {"svhn": {"md5": {"train_32x32.mat": "abc"}}}},
     "datasets.svhn.md5.train_32x32.mat: 'abc' does not match"),
    ({"datasets": {"svhn": {"md5": {"valid_32x32.mat": None}}}},
     "datasets.svhn.md5: key 'valid_32x32.mat'"),
    ({"datasets": {"cifar10": {"use_extra": True}}}, "datasets.cifar10: unknown key 'use_extra'"),
])
def test_config_mistakes_are_refused_in_one_line(overlay: dict, expected: str) -> None:
    assert expected in refused(overlay)


def test_fitting_sizes_and_known_sources_pass() -> None:
    cfg = config({"datasets": {
        "cifar10": {"val_size": 49999, "url": "/mirror/cifar-10-python.tar.gz"},
        "cinic10": {"val_size": 90000, "url": "file:///mirror/CINIC-10.tar.gz"},
        "cifar100": {"fake": {"per_class": 3}, "val_size": 299},
        "svhn": {"url": "https://mirror.example/svhn/", "fake": {"per_class": 5},
                 "val_per_class": {"train": 5, "extra": 5}}}})
    assert cfg["_warnings"] == []


def test_milestones_past_the_last_epoch_warn_once_and_do_not_refuse() -> None:
    cfg = config({"train": {"epochs": 3}})
    assert len(cfg["_warnings"]) == 1
    warning = cfg["_warnings"][0]
    assert "milestones 250, 375 are at or past the last epoch (3)" in warning
    assert "cifar10/resnet50/baseline" in warning and "more" in warning
    assert len(grid.runs(cfg)) == 40
    assert config({"train": {"epochs": 3, "milestones": [2]}})["_warnings"] == []


# ----------------------------------------------------------------------------- network families


def networks_of(cfg: dict) -> list[tuple[str, str]]:
    """(data set, network) in grid order, each once."""
    return list(dict.fromkeys((r.dataset, r.network) for r in grid.runs(cfg)))


def test_shipped_configs_keep_their_run_folders_and_flags() -> None:
    """Nothing trained before network families joined a run's identity is retrained: every
    config shipped then (the snapshot's `# <file>` headers; presets added since have nothing to
    keep) gives exactly the run folders and `sdnet train` flags it gave before, but for the
    recipe's settings (issue 25), which retrain on purpose: `--amp` became `--precision` and the
    original code's choices joined (tests/test_recipe.py checks what they are)."""
    before = BEFORE_FAMILIES.read_text().splitlines()
    names = [line[2:] for line in before if line.startswith("# ")]
    assert names[:2] == ["config.yaml", "config/demo.yaml"] and len(names) == 6
    lines = []
    for name in names:
        files = [BASE] if name == "config.yaml" else [BASE, ROOT / name]
        cfg = grid.load_config(files, warn=lambda message: None)
        lines.append(f"# {name}")
        lines += [f"{cfg['results_dir']}/{run.folder} {shlex.join(settings.to_flags(run.settings))}"
                  for run in grid.runs(cfg)]
    assert len(lines) == len(before) == 178
    assert [without_recipe(line) for line in lines] == [without_recipe(line) for line in before]
    assert "--precision float32" in lines[1] and "--amp" in before[1]


RECIPE_FLAGS = ("--amp", "--no-amp", "--precision", "--bn-init", "--conv-init", "--normalize",
                "--pad-fill", "--lr-drop", "--eval-every")


def without_recipe(line: str) -> str:
    """A snapshot line without the recipe's flags (and their values)."""
    words, out = shlex.split(line), []
    skip = False
    for word in words:
        if skip and not word.startswith("--"):
            continue
        skip = word in RECIPE_FLAGS
        if not skip:
            out.append(word)
    return shlex.join(out)


def test_archs_choose_the_families_of_the_grid() -> None:
    cfg = config({"experiment": {"datasets": ["cifar10", "svhn"], "depths": [50, 110],
                                 "archs": [None, "preact", "cifar"], "seeds": [0],
                                 "per_dataset": {"svhn": {"depths": [164],
                                                          "archs": ["preact-bottleneck"]}}}})
    assert networks_of(cfg) == [
        ("cifar10", "resnet50"), ("cifar10", "resnet110"), ("cifar10", "preact-resnet50"),
        ("cifar10", "preact-resnet110"), ("cifar10", "cifar-resnet50"),
        ("svhn", "preact-bottleneck-resnet164")]
    by_folder = {r.folder: r for r in grid.runs(cfg)}
    assert len(by_folder) == len(grid.runs(cfg)) == 12  # a CIFAR and a bottleneck ResNet-50
    cifar50 = by_folder["runs/cifar10/cifar-resnet50/stochastic/seed0"]
    assert (cifar50.depth, cifar50.arch, cifar50.settings["arch"]) == (50, "cifar", "cifar")
    assert "--arch cifar" in shlex.join(settings.to_flags(cifar50.settings))
    own = by_folder["runs/cifar10/resnet50/stochastic/seed0"]  # the depth's own: no --arch
    assert (own.arch, own.settings["arch"]) == ("bottleneck", None)
    assert "--arch" not in settings.to_flags(own.settings)
    pre = by_folder["runs/svhn/preact-bottleneck-resnet164/baseline/seed0"]
    assert (pre.settings["depth"], pre.settings["arch"]) == (164, "preact-bottleneck")
    assert pre.wildcards["network"] == "preact-bottleneck-resnet164"
    assert grid.grid_axes(cfg, "svhn")[0] == ["preact-bottleneck-resnet164"]


def test_a_family_skips_the_depths_it_has_not() -> None:
    """bottleneck has 50 but no 110: archs [cifar, bottleneck] trains ResNet-110 once; null
    and cifar both make resnet110: trained once too."""
    cfg = config({"experiment": {"datasets": ["cifar10"], "depths": [50, 110],
                                 "archs": ["cifar", "bottleneck"], "seeds": [0]}})
    assert [n for _, n in networks_of(cfg)] == ["cifar-resnet50", "resnet110", "resnet50"]
    cfg = config({"experiment": {"datasets": ["cifar10"], "depths": [110],
                                 "archs": [None, "cifar"], "seeds": [0]}})
    assert [r.folder for r in grid.runs(cfg)] == ["runs/cifar10/resnet110/baseline/seed0",
                                                  "runs/cifar10/resnet110/stochastic/seed0"]


def test_the_networks_cascade_is_keyed_by_network_name() -> None:
    cfg = config({"experiment": {"datasets": ["cifar10"], "depths": [1202],
                                 "archs": [None, "preact"], "seeds": [0]},
                  "networks": {"preact-resnet1202": {"epochs": 7, "lr": 0.05}}})
    settings_of = {r.network: r.settings for r in grid.runs(cfg)}
    assert (settings_of["resnet1202"]["epochs"], settings_of["resnet1202"]["lr"]) == (300, 0.1)
    assert (settings_of["preact-resnet1202"]["epochs"],
            settings_of["preact-resnet1202"]["lr"]) == (7, 0.05)
    assert grid.run_settings(cfg, "cifar10", "preact-resnet1202", "baseline", 0)["epochs"] == 7
    assert grid.run_settings(cfg, "cifar10", "1202", "baseline", 0)["epochs"] == 300


@pytest.mark.parametrize(("overlay", "expected"), [
    ({"experiment": {"archs": ["resnext"]}},
     "experiment.archs[0]: unknown architecture 'resnext'; choose one of "
     + ", ".join(networks.families())),
    ({"experiment": {"per_dataset": {"cinic10": {"archs": ["preact", "wide"]}}}},
     "experiment.per_dataset.cinic10.archs[1]: unknown architecture 'wide'"),
    ({"experiment": {"depths": [110, 164], "archs": ["bottleneck"]}},
     ("experiment.depths: depth 110 fits no architecture of archs [bottleneck]; families with "
      "depth 110: cifar, preact, preact-bottleneck (add one to archs)")),
    ({"experiment": {"depths": [1001]}},
     ("experiment.depths: depth 1001 fits no architecture of archs [null (the depth's own)]; "
      "families with depth 1001: preact-bottleneck")),
    ({"variants": {"Stochastic": {"survival": "linear"}},
      "experiment": {"variants": ["stochastic", "Stochastic"]}},
     ("runs runs/cifar10/resnet50/stochastic/seed0 and runs/cifar10/resnet50/Stochastic/seed0 "
      "would share one folder on a case-insensitive file system")),
    ({"networks": {"cifar-resnet110": {"epochs": 3}}},
     "networks.cifar-resnet110: 'cifar-resnet110' is not a network name: write it 'resnet110'"),
    ({"networks": {"preact-resnet57": {"epochs": 3}}}, "networks.preact-resnet57: depth 57 fits"),
    ({"networks": {"resnext-resnet50": {"epochs": 3}}},
     "networks.resnext-resnet50: unknown architecture 'resnext'"),
    ({"train": {"arch": "preact"}},
     ("train.arch: the network family is part of a run's identity (its folder); choose it "
      "with experiment.archs")),
    ({"networks": {"resnet152": {"arch": "bottleneck"}}}, "networks.resnet152.arch: the network"),
    ({"variants": {"stochastic": {"survival": "linear", "sweep": {"arch": ["cifar", None]}}}},
     "variants.stochastic.sweep.arch: the network family is part of a run's identity"),
], ids=["unknown-arch", "unknown-arch-per-dataset", "no-family", "no-default-family",
        "one-folder", "non-canonical-name", "bad-depth-name", "unknown-name-family",
        "arch-in-train", "arch-in-networks", "arch-swept"])
def test_family_mistakes_are_refused_in_one_line(overlay: dict, expected: str) -> None:
    assert expected in refused(overlay)


def test_arch_null_from_old_configs_is_still_accepted() -> None:
    """`arch: null` was the schema's default of train:, so configs may spell it out."""
    cfg = config({"train": {"arch": None}, "variants": {"baseline": {"arch": None}}})
    assert "arch" not in cfg["train"] and len(grid.runs(cfg)) == 40


# ----------------------------------------------------------------------------- presets, speed


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_paper_presets_expand_to_their_grids(preset: str) -> None:
    cfg = grid.load_config([BASE, ROOT / f"config/paper/{preset}.yaml"],
                           warn=pytest.fail)  # no preset triggers a warning
    runs = grid.runs(cfg)
    assert len(runs) == PRESETS[preset]
    assert cfg["results_dir"] == f"results/paper/{preset}"  # presets never share run folders
    assert len({r.folder for r in runs}) == len(runs)
    by_key = {(r.dataset, r.depth, r.variant): r.settings for r in runs}
    if preset == "table1":
        assert {(d, n) for d, n, _ in by_key} == {("cifar10", 110), ("cifar100", 110),
                                                  ("svhn", 152)}
        assert by_key[("svhn", 152, "stochastic")]["milestones"] == [30, 35]
    if preset == "fig8":
        variants = sorted({v for _, _, v in by_key})
        assert len(variants) == 20 and "linear-p_last0.1" in variants
        assert "uniform-p_last1.0" in variants
        assert by_key[("cifar10", 110, "uniform-p_last0.3")]["survival"] == "uniform"
    if preset == "resnet1202":
        assert by_key[("cifar10", 1202, "stochastic")]["warmup_epochs"] == 10
    if preset == "no-augmentation":
        assert not any(s["augment"] for s in by_key.values())


def test_grid_is_light_and_fast(tmp_path: Path) -> None:
    """`sdnet status` lists 1,000 runs in under 1 s: no torch, pandas or numpy, and the
    expansion itself takes a fraction of that."""
    probe = ("import sys, sdnet.grid; print(sorted(m for m in ('torch', 'pandas', 'numpy') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump({"experiment": {
        "datasets": ["cifar10", "cifar100", "cinic10", "svhn"], "depths": [20, 56, 110, 152, 1202],
        "variants": ["baseline", "sweep"], "seeds": list(range(5))},
        "variants": {"sweep": {"survival": "linear",
                               "sweep": {"p_last": [i / 10 for i in range(1, 10)]}}}}))
    start = time.perf_counter()
    runs = grid.runs(grid.load_config([BASE, big], warn=lambda message: None))
    seconds = time.perf_counter() - start
    assert len(runs) == 4 * 5 * 10 * 5
    assert seconds < 0.5, f"{len(runs)} runs took {seconds:.2f} s"
