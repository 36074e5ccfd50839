"""The original code's recipe (issue 25; docs/recipe.md): each point computed here on its own,
from main.lua / cifar-dataset.lua / ResidualDrop.lua (yueatsprograms/Stochastic_Depth), and
compared with what sdnet trains by default.

Fast: one ResNet-110 built twice, a few tiny ResNet-8 runs on fake CIFAR-10 (CPU).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sdnet.train.device
from sdnet import cli, grid, models, settings
from sdnet.errors import SdnetError
from sdnet.settings import TrainConfig
from sdnet.train import loop as train
from sdnet.train import runfolder

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "config.yaml"
# The recipe's settings and, first, the original's choice of each (the defaults).
RECIPE = {"precision": ("float32", "bf16"), "bn_init": ("uniform", "ones"),
          "conv_init": ("fan_in", "fan_out"), "normalize": ("pixel", "channel"),
          "pad_fill": ("mean", "black"), "lr_drop": ("original", "late")}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(prepared_cifar10: Path) -> Path:
    return Path(prepared_cifar10)


def run_config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = {"data": data, "dataset": "cifar10", "depth": 8, "out": out, "epochs": 3,
              "batch_size": 16, "lr": 0.05, "milestones": [3], "limit_train": 64, "seed": 1,
              "device": "cpu"}
    values.update(overrides)
    return TrainConfig(**values)


# ----------------------------------------------------------------------------- the defaults


def test_defaults_and_presets_are_the_originals_choices() -> None:
    """`sdnet train` with no recipe flags, config.yaml's grid and every paper preset train the
    original's choice on every point (ImageNet: fb.resnet.torch's, the code the paper cites for
    it); config/fast.yaml turns each one to the modern choice."""
    defaults = settings.defaults()
    assert {k: defaults[k] for k in RECIPE} == {k: v[0] for k, v in RECIPE.items()}
    assert defaults["eval_every"] == 0
    presets = [[BASE]] + [[BASE, p] for p in sorted((ROOT / "config/paper").glob("*.yaml"))]
    for files in presets:
        for run in grid.runs(grid.load_config(files, warn=lambda message: None)):
            recipe = {k: run.settings[k] for k in RECIPE}
            if run.dataset == "imagenet":  # BNInit, MSRinit, per-channel mean/std, floor(e-1)/30
                assert recipe == {"precision": "float32", "bn_init": "ones",
                                  "conv_init": "fan_out", "normalize": "channel",
                                  "pad_fill": "mean", "lr_drop": "late"}, (files, run)
                continue
            assert recipe == {k: v[0] for k, v in RECIPE.items()} \
                or "recipe-ablation" in str(files[-1]), (files, run)
            assert run.settings["eval_every"] == (200 if run.dataset == "svhn" else 0)
    fast = grid.load_config([BASE, ROOT / "config/fast.yaml"], warn=lambda message: None)
    for run in grid.runs(fast):
        assert {k: run.settings[k] for k in RECIPE} == {k: v[1] for k, v in RECIPE.items()}
    assert fast["datasets"]["svhn"]["train"]["eval_every"] == 0


# ----------------------------------------------------------------------------- learning rate


def original_lr(epoch: int, max_epochs: int, fractions: tuple[float, float]) -> float:
    """main.lua lines 166-172, 1-based `epochCounter`."""
    if epoch < max_epochs * fractions[0]:
        return 0.1
    if epoch < max_epochs * fractions[1]:
        return 0.01
    return 0.001


def sdnet_lrs(dataset: str) -> list[float]:
    """The lr of every epoch of config.yaml's run of `dataset`, as sdnet's trainer steps it."""
    cfg = grid.load_config([BASE], warn=lambda message: None)
    run = grid.run_settings(cfg, dataset, "resnet110", "stochastic", 0)
    config = settings.check_config(TrainConfig(data=Path("d"), out=Path("o"), **run))
    optimizer, scheduler = train.build_optimizer(nn.Linear(2, 2), config)
    lrs = []
    for _ in range(config.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("dataset", "epochs", "fractions", "spans"), [
    ("cifar10", 500, (0.5, 0.75), [(1, 249), (250, 374), (375, 500)]),
    ("svhn", 50, (0.6, 0.7), [(1, 29), (30, 34), (35, 50)]),
])
def test_lr_of_every_epoch_is_the_originals(dataset, epochs, fractions, spans) -> None:
    expected = [original_lr(e, epochs, fractions) for e in range(1, epochs + 1)]
    assert sdnet_lrs(dataset) == pytest.approx(expected, rel=1e-12)
    for lr, (first, last) in zip((0.1, 0.01, 0.001), spans):  # the spans, by hand
        assert set(expected[first - 1:last]) == {lr}


def test_lr_drop_late_is_one_epoch_later() -> None:
    config = settings.check_config(TrainConfig(data=Path("d"), out=Path("o"), dataset="cifar10",
                                               depth=8, epochs=6, milestones=[3, 5],
                                               lr_drop="late"))
    optimizer, scheduler = train.build_optimizer(nn.Linear(2, 2), config)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])


# ----------------------------------------------------------------------------- initialisation


@pytest.fixture(scope="module")
def resnet110() -> nn.Module:
    torch.manual_seed(0)
    return models.build_model(110, survival="linear")


def test_batch_norm_scales_are_uniform_0_1_as_torchs_reset(resnet110) -> None:
    bns = [m for m in resnet110.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bns])
    assert len(bns) == 109 and scales.numel() > 4000
    assert float(scales.min()) >= 0.0 and float(scales.max()) <= 1.0
    # U(0, 1): mean 0.5, std 1/sqrt(12); the mean of n draws within 6 standard errors
    assert abs(float(scales.mean()) - 0.5) < 6 / math.sqrt(12 * scales.numel())
    assert abs(float(scales.std()) - 1 / math.sqrt(12)) < 0.02
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in bns)


def test_conv_weights_are_he_normal_on_the_fan_in(resnet110) -> None:
    """nninit.kaiming, gain relu: std sqrt(2 / fan_in), fan_in = k * k * in_channels; no conv
    bias (batch norm follows each conv); the classifier at Torch's default init."""
    convs = [m for m in resnet110.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in convs)
    for m in convs:
        fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        n = m.weight.numel()
        if n >= 4000:  # the std of n normal draws is within a few % of sigma
            assert float(m.weight.std()) / math.sqrt(2 / fan_in) == pytest.approx(1, abs=0.06)
    # A 16 -> 32 transition conv tells fan-in from fan-out (144 against 288).
    wide = next(m for m in convs if (m.in_channels, m.out_channels) == (16, 32)
                and m.kernel_size == (3, 3))
    assert float(wide.weight.std()) == pytest.approx(math.sqrt(2 / 144), rel=0.1)
    bound = 1 / math.sqrt(resnet110.fc.in_features)
    assert float(resnet110.fc.bias.abs().max()) > 0
    assert float(resnet110.fc.weight.abs().max()) <= bound
    assert float(resnet110.fc.bias.abs().max()) <= bound


def test_the_earlier_initialisation_stays_one_setting_away(data_dir, tmp_path) -> None:
    config = settings.check_config(run_config(data_dir, tmp_path, depth=20, bn_init="ones",
                                              conv_init="fan_out"))
    model = train.build_model(config, torch.device("cpu"))
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all()) for m in bns)
    wide = next(m for m in model.modules() if isinstance(m, nn.Conv2d)
                and (m.in_channels, m.out_channels) == (16, 32) and m.kernel_size == (3, 3))
    assert float(wide.weight.std()) == pytest.approx(math.sqrt(2 / 288), rel=0.1)
    assert float(model.fc.bias.abs().max()) == 0.0


# ----------------------------------------------------------------------------- data


def original_preprocess(train_images: np.ndarray) -> tuple[np.ndarray, float]:
    """cifar-dataset.lua `preprocess`: data:mean(1) (a mean image) and data:std() (one scalar,
    unbiased), here on the 0-1 scale and CHW."""
    data = train_images.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    return data.mean(axis=0), float(data.std(ddof=1))


def original_shift(image: np.ndarray, xoffs: int, yoffs: int, flip: bool) -> np.ndarray:
    """cifar-dataset.lua `sampleIndices`: copy a normalised CHW image into a zeroed canvas
    shifted by (xoffs, yoffs) in -4..4, then maybe flip horizontally."""
    _, h, w = image.shape
    out = np.zeros_like(image)
    ys, yd = slice(max(0, yoffs), min(h, h + yoffs)), slice(max(0, -yoffs), min(h, h - yoffs))
    xs, xd = slice(max(0, xoffs), min(w, w + xoffs)), slice(max(0, -xoffs), min(w, w - xoffs))
    out[:, ys, xs] = image[:, yd, xd]
    return out[:, :, ::-1] if flip else out


def test_shifted_training_images_are_the_originals_with_a_mean_colour_border(data_dir,
                                                                             tmp_path) -> None:
    """Every augmented image sdnet feeds is the original's augmentation of some training image
    (normalised by the training split's mean image and scalar std), and the border that the
    shift opens is 0: the mean colour."""
    config = settings.check_config(run_config(data_dir, tmp_path, limit_train=12,
                                              batch_size=12, channels_last=False))
    prepared = train.load_data(config)
    mean, std = original_preprocess(prepared.train[0])
    normalised = (prepared.train[0][:12].astype(np.float64).transpose(0, 3, 1, 2) / 255.0
                  - mean) / std
    loaders = train.build_loaders(config, prepared, torch.device("cpu"))
    x, _ = next(loaders.train.batches(0))
    candidates = {(i, dx, dy, flip): original_shift(normalised[i], dx, dy, flip)
                  for i in range(12) for dx in range(-4, 5) for dy in range(-4, 5)
                  for flip in (False, True)}
    borders = 0
    for out in x.numpy().astype(np.float64):
        found = [key for key, c in candidates.items() if np.allclose(out, c, atol=1e-4)]
        assert found, "an augmented image that the original would not produce"
        _, dx, dy, flip = found[0]
        border = original_shift(np.ones((3, 32, 32)), dx, dy, flip) == 0
        if border.any():
            borders += 1
            assert np.abs(out[border]).max() == 0.0  # exactly the mean colour
    assert borders >= 8  # 80 of 81 offsets shift


def test_the_unshifted_splits_use_the_training_splits_mean_image(data_dir, tmp_path) -> None:
    config = settings.check_config(run_config(data_dir, tmp_path, channels_last=False))
    prepared = train.load_data(config)
    mean, std = original_preprocess(prepared.train[0])
    loaders = train.build_loaders(config, prepared, torch.device("cpu"))
    x, _ = next(loaders.test.batches(0))
    images = prepared.test[0][:len(x)].astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    assert np.allclose(x.numpy(), (images - mean) / std, atol=1e-4)


def test_black_padding_pads_raw_pixels(data_dir, tmp_path) -> None:
    """pad_fill black with channel normalisation: the border is raw 0, i.e. -mean/std."""
    config = settings.check_config(run_config(data_dir, tmp_path, limit_train=64,
                                              batch_size=64, normalize="channel",
                                              pad_fill="black", channels_last=False))
    prepared = train.load_data(config)
    loaders = train.build_loaders(config, prepared, torch.device("cpu"))
    x, _ = next(loaders.train.batches(0))
    black = -np.asarray(prepared.mean) / np.asarray(prepared.std)
    corners = x.numpy()[:, :, 0, 0]  # a corner is border unless both offsets are 0 or negative
    hits = np.isclose(corners, black, atol=1e-4).all(axis=1)
    assert hits.sum() >= 16


# ----------------------------------------------------------------------------- evaluation


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_eval_every_evaluates_every_n_steps_and_reports_the_test_error_at_best_val(
        data_dir, tmp_path) -> None:
    """An SVHN-like run (no augmentation, eval_every 3 of 4 steps per epoch): evaluations at
    run steps 3, 6, 9 and at each epoch's end (4, 8, 12); the summary's test error is the one at
    the lowest validation error of all of them (earliest on ties), computed here from the
    rows. Resumed after epoch 2, the run writes the same evaluations."""
    out = tmp_path / "svhn-like"
    summary = train.train(run_config(data_dir, out, eval_every=3, augment=False))
    rows = read_csv(out / runfolder.EVALUATIONS)
    assert [int(r["step"]) for r in rows] == [3, 4, 6, 8, 9, 12]
    assert [int(r["epoch"]) for r in rows] == [1, 1, 2, 2, 3, 3]
    assert len(read_csv(out / runfolder.METRICS)) == 3  # metrics.csv: one row per epoch
    vals = [float(r["val_error"]) for r in rows]
    best = vals.index(min(vals))
    assert summary["best_val_error"] == pytest.approx(vals[best])
    assert summary["test_error_at_best"] == pytest.approx(float(rows[best]["test_error"]))
    assert summary["best_step"] == int(rows[best]["step"])
    assert summary["best_epoch"] == int(rows[best]["epoch"]) and summary["evaluations"] == 6
    assert json.loads((out / "summary.json").read_text())["test_error_at_best"] == \
        summary["test_error_at_best"]

    class Stop(Exception):
        pass

    def stop_after_two(epoch: int) -> None:
        if epoch == 2:
            raise Stop

    again = tmp_path / "resumed"
    with pytest.raises(Stop):
        train.train(run_config(data_dir, again, eval_every=3, augment=False),
                    on_epoch_end=stop_after_two)
    assert len(read_csv(again / runfolder.EVALUATIONS)) == 4
    resumed = train.train(run_config(data_dir, again, eval_every=3, augment=False))
    assert read_csv(again / runfolder.EVALUATIONS) == rows
    assert resumed["test_error_at_best"] == summary["test_error_at_best"]


def test_an_interval_longer_than_an_epoch_still_evaluates_each_epoch_end(data_dir,
                                                                         tmp_path) -> None:
    out = tmp_path / "long"
    train.train(run_config(data_dir, out, eval_every=6, augment=False))  # 4 steps per epoch
    assert [int(r["step"]) for r in read_csv(out / runfolder.EVALUATIONS)] == [4, 6, 8, 12]


def test_evaluation_is_float32_with_bf16_training(data_dir, tmp_path, monkeypatch) -> None:
    """bf16 autocast is forced on here (this CPU may lack native bf16): the training forward
    pass gives bf16 logits, the evaluation float32 ones."""
    monkeypatch.setattr(sdnet.train.device, "cpu_has_bf16", lambda: True)
    config = settings.check_config(run_config(data_dir, tmp_path, precision="bf16"))
    device = torch.device("cpu")
    model = train.build_model(config, device)
    with train.autocast(config, device):
        assert model(torch.randn(4, 3, 32, 32)).dtype == torch.bfloat16
    seen = []
    model.fc.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    loaders = train.build_loaders(config, train.load_data(config), device)
    with train.autocast(config, device):  # even inside an autocast region
        train.evaluate(model, loaders.test, config, device)
    assert seen and set(seen) == {torch.float32}


# ----------------------------------------------------------------------------- bad input, staleness


@pytest.mark.parametrize(("flag", "bad"), [("--precision", "fp16"), ("--bn-init", "zeros"),
                                           ("--conv-init", "xavier"), ("--normalize", "none"),
                                           ("--pad-fill", "white"), ("--lr-drop", "early"),
                                           ("--eval-every", "-1")])
def test_an_unknown_value_is_one_line_listing_the_valid_ones(flag, bad, tmp_path, capsys) -> None:
    args = ["train", "--data", str(tmp_path), "--dataset", "cifar10", "--depth", "8",
            "--out", str(tmp_path / "o"), flag, bad]
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    name = flag[2:].replace("-", "_")
    valid = dict(RECIPE).get(name, ())
    assert all(v in err[0] for v in valid), err
    assert not (tmp_path / "o").exists()
    if valid:  # the config says the same before any job
        cfg = yaml_config({"train": {name: bad}})
        with pytest.raises(grid.ConfigError) as err_:
            grid.validate(cfg, ROOT / grid.SCHEMA_RELPATH)
        assert "\n" not in str(err_.value) and all(v in str(err_.value) for v in valid)
        with pytest.raises(SdnetError, match=f"{flag} must be .* got '{bad}'"):
            settings.check_config(TrainConfig(data=Path("d"), out=Path("o"), dataset="cifar10",
                                              depth=8, **{name: bad}))


def yaml_config(overlay: dict) -> dict:
    import yaml

    cfg = yaml.safe_load(BASE.read_text())
    for key, value in overlay.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


def test_the_old_amp_name_still_works() -> None:
    args = ["train", "--data", "d", "--dataset", "cifar10", "--depth", "8", "--out", "o"]
    parser = cli.build_parser()
    assert settings.from_arguments(parser.parse_args([*args, "--no-amp"])).precision == "float32"
    assert settings.from_arguments(parser.parse_args([*args, "--amp"])).precision == "bf16"
    cfg = yaml_config({"train": {"amp": True}})
    del cfg["train"]["precision"]
    warnings: list[str] = []
    grid.validate(cfg, ROOT / grid.SCHEMA_RELPATH, warn=warnings.append)
    assert cfg["train"]["precision"] == "bf16" and "amp" not in cfg["train"]
    assert any("train.amp is the old name of precision" in w for w in warnings)
    clash = yaml_config({"train": {"amp": True}})  # config.yaml's precision: float32 too
    with pytest.raises(grid.ConfigError, match="write precision: bf16 instead of amp"):
        grid.validate(clash, ROOT / grid.SCHEMA_RELPATH)


OLD_RUN = {"dataset": "cifar10", "depth": 110, "arch": "cifar", "shortcut": "A",
           "survival": "linear", "p_last": 0.5, "variant": "stochastic", "seed": 0,
           "epochs": 500, "batch_size": 128, "lr": 0.1, "milestones": [250, 375], "gamma": 0.1,
           "momentum": 0.9, "weight_decay": 1e-4, "nesterov": True, "warmup_epochs": 0,
           "augment": True, "limit_train": None, "device": "auto", "amp": True,
           "channels_last": True, "sync_bn": None, "data": "resources/data/cifar10"}


def test_a_run_of_the_earlier_recipe_is_stale_and_status_says_why(tmp_path) -> None:
    cfg = grid.load_config([BASE], warn=lambda message: None)
    expected = grid.run_settings(cfg, "cifar10", "resnet110", "stochastic", 0)
    folder = tmp_path / "run"
    folder.mkdir()
    runfolder.write_run_info(folder, OLD_RUN, "0123456789abcdef", 500, 100)
    status = runfolder.run_status(folder, expected)
    assert status.state == "stale"
    assert "precision bf16 (bf16 evaluation) -> float32" in status.mismatch
    assert "bn_init unset (ones, before the setting) -> uniform" in status.mismatch
    assert "lr_drop unset (late, before the setting) -> original" in status.mismatch
    assert {line.split()[0] for line in status.mismatch} == {
        "precision", "bn_init", "conv_init", "normalize", "pad_fill", "lr_drop"}


def test_fingerprints_change_only_where_the_recipe_changed() -> None:
    """A float32 run of the earlier recipe (amp false, no recipe keys) keeps its fingerprint
    under the earlier choices; each original choice, and bf16 (its evaluation is float32 now),
    changes it."""
    meta = {"source_md5": "x"}
    old = dict(OLD_RUN, amp=False)
    earlier = {k: v for k, v in OLD_RUN.items() if k != "amp"}
    earlier.update({k: v[1] for k, v in RECIPE.items()}, precision="float32", eval_every=0)
    assert settings.fingerprint(earlier, meta) == settings.fingerprint(old, meta)
    assert settings.settings_mismatch(old, earlier) == []
    for name, (original, _) in RECIPE.items():
        changed = dict(earlier, **{name: original if name != "precision" else "bf16"})
        assert settings.fingerprint(changed, meta) != settings.fingerprint(old, meta), name
    assert settings.fingerprint(dict(earlier, eval_every=200), meta) != \
        settings.fingerprint(old, meta)
    bf16_before = dict(OLD_RUN)  # amp true: bf16 evaluation, which no run does now
    assert settings.fingerprint(dict(earlier, precision="bf16"), meta) != \
        settings.fingerprint(bf16_before, meta)


def test_the_ablation_preset_varies_one_choice_at_a_time() -> None:
    """config/paper/recipe-ablation.yaml: CIFAR-10 ResNet-110, constant and stochastic depth,
    the original recipe, each modern choice alone and all together, 5 seeds (80 runs); every
    variant differs from its depth mode's original-recipe variant in its choices only."""
    cfg = grid.load_config([BASE, ROOT / "config/paper/recipe-ablation.yaml"],
                           warn=lambda message: None)
    runs = grid.runs(cfg)
    assert len(runs) == 80 and {(r.dataset, r.network) for r in runs} == {("cifar10",
                                                                           "resnet110")}
    assert sorted({r.seed for r in runs}) == [0, 1, 2, 3, 4]
    settings_of = {r.variant: r.settings for r in runs if r.seed == 0}
    modern = {k: v[1] for k, v in RECIPE.items()}
    alone = {"bf16": "precision", "channel": "normalize", "black": "pad_fill",
             "bn-ones": "bn_init", "fan-out": "conv_init", "late": "lr_drop"}
    for mode in ("constant", "stochastic"):
        base = settings_of[mode]
        assert {k: base[k] for k in RECIPE} == {k: v[0] for k, v in RECIPE.items()}
        for suffix, name in alone.items():
            other = settings_of[f"{mode}-{suffix}"]
            changed = {k for k in base if base[k] != other[k] and k != "variant"}
            assert changed == {name} and other[name] == modern[name], (mode, suffix)
        every = settings_of[f"{mode}-modern"]
        assert {k for k in base if base[k] != every[k] and k != "variant"} == set(RECIPE)
