"""sdnet.networks (the torch-free family registry) and sdnet.models.build_model on top of it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sdnet import cli, networks
from sdnet.errors import SdnetError
from sdnet.models import GatedNetwork, build_model, builder
from sdnet.networks import Family, SpecError

# --- the registry (torch-free) ------------------------------------------------------------------


def test_importing_the_registry_imports_no_torch() -> None:
    code = ("import sys, sdnet.networks, sdnet.spec; "
            "sys.exit(1 if 'torch' in sys.modules or 'numpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_families_and_their_default_depths() -> None:
    assert networks.families() == ("cifar", "bottleneck", "preact", "preact-bottleneck",
                                   "imagenet")
    assert networks.resolve_arch(110) == "cifar"
    assert networks.resolve_arch(50) == "bottleneck"
    assert networks.resolve_arch(50, "cifar") == "cifar"
    assert networks.resolve_arch(110, "preact") == "preact"
    assert networks.resolve_arch(164, "preact-bottleneck") == "preact-bottleneck"
    assert networks.family("preact").builder == "sdnet.models.preact:preact_resnet"


def test_unknown_architecture_lists_the_registered_ones() -> None:
    with pytest.raises(SpecError) as err:
        networks.resolve_arch(110, "densenet")
    message = str(err.value)
    assert "\n" not in message
    assert message == ("unknown architecture 'densenet'; choose one of cifar, bottleneck, preact, "
                       "preact-bottleneck, imagenet")


@pytest.mark.parametrize("depth,arch,pieces", [
    (57, None, ["depth 57 fits no architecture", "cifar: 6n+2", "bottleneck: 50/101/152",
                "preact-bottleneck: 9n+2 (164, 1001"]),
    (32, "preact-bottleneck", [("depth 32 fits no pre-activation bottleneck ResNet "
                                "(--arch preact-bottleneck)"), ("valid depths: preact-bottleneck: "
                                "9n+2 (164, 1001, ...)")]),
    (29, "preact", ["(--arch preact)", "preact: 6n+2"]),
    (20, "bottleneck", ["bottleneck: 50/101/152 (50, 101, 152, ...)"]),
    (0, None, ["depth must be a positive integer, got 0"]),
    ("110", None, ["depth must be a positive integer, got '110'"]),
])
def test_bad_depth_is_one_line_with_the_familys_rule(depth, arch, pieces) -> None:
    with pytest.raises(SpecError) as err:
        networks.resolve_arch(depth, arch)
    message = str(err.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message
    if arch is not None:  # only the asked family's rule
        others = [f for f in networks.families() if f != arch]
        assert not any(f"depths: {f}:" in message or f"; {f}:" in message for f in others)


@pytest.mark.parametrize("depth,arch,name", [
    (110, None, "resnet110"), (50, None, "resnet50"), (110, "cifar", "resnet110"),
    (50, "cifar", "cifar-resnet50"), (110, "preact", "preact-resnet110"),
    (164, "preact-bottleneck", "preact-bottleneck-resnet164"),
])
def test_network_names_round_trip(depth: int, arch: str | None, name: str) -> None:
    assert networks.network_name(depth, arch) == name
    assert networks.parse_network(name) == (networks.resolve_arch(depth, arch), depth)
    assert __import__("re").fullmatch(networks.NETWORK_PATTERN, name)


@pytest.mark.parametrize("name", ["cifar-resnet110", "resnet57", "vgg16", "densenet-resnet110"])
def test_names_that_are_not_networks(name: str) -> None:
    with pytest.raises(SpecError):
        networks.parse_network(name)


def test_register_family_refuses_duplicates_and_bad_names(monkeypatch) -> None:
    monkeypatch.setattr(networks, "FAMILIES", dict(networks.FAMILIES))
    tiny = Family("tiny", "tiny ResNet", "gated_helpers:tiny_family_builder", "n >= 1",
                  lambda d: d >= 1, (1, 2))
    networks.register_family(tiny)
    assert networks.families()[-1] == "tiny"
    with pytest.raises(ValueError, match="already registered"):
        networks.register_family(tiny)
    for bad in ("Tiny", "tiny-resnet", "tiny_net", "-tiny"):
        with pytest.raises(ValueError, match="lower-case"):
            networks.register_family(Family(bad, "", "m:f", "", bool, ()))


@pytest.mark.parametrize("size,stride", [(32, 1), (64, 2)])
def test_stem_stride(size: int, stride: int) -> None:
    assert networks.stem_stride(size) == stride


@pytest.mark.parametrize("size", [28, 48, 96, 0, True])
def test_other_image_sizes_are_one_line(size) -> None:
    with pytest.raises(SpecError, match=r"image size .* choose one of 32, 64"):
        networks.stem_stride(size)


# --- build_model through the registry -------------------------------------------------------------


@pytest.mark.parametrize("depth,arch,block", [
    (20, None, "BasicBlock"), (50, None, "Bottleneck"), (20, "preact", "PreActBasicBlock"),
    (11, "preact-bottleneck", "PreActBottleneck"),
])
def test_build_model_builds_each_family_by_name(depth, arch, block) -> None:
    model = build_model(depth, arch, num_classes=7)
    assert isinstance(model, GatedNetwork)
    assert type(model.blocks[0]).__name__ == block
    assert model.fc.out_features == 7
    name = networks.resolve_arch(depth, arch)
    assert builder(name).__module__ == networks.family(name).builder.split(":")[0]


def test_a_registered_family_is_built_by_its_builder_string(monkeypatch) -> None:
    monkeypatch.setattr(networks, "FAMILIES", dict(networks.FAMILIES))
    networks.register_family(Family("tiny", "tiny ResNet", "gated_helpers:tiny_family_builder",
                                    "n >= 1", lambda d: d >= 1, (1, 2)))
    model = build_model(3, "tiny", survival="linear", p_last=0.5, image_size=64)
    assert len(model.blocks) == 3 and model.gate.probabilities[-1] == 0.5
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert networks.network_name(3, "tiny") == "tiny-resnet3"


@pytest.mark.parametrize("target,error,match", [
    ("gated_helpers:no_such_function", SdnetError, ("builder 'gated_helpers:no_such_function' "
     "cannot be loaded")),
    ("no_such_module:f", SdnetError, "cannot be loaded .ModuleNotFoundError"),
    ("gated_helpers:ungated_builder", TypeError, "not a GatedNetwork"),
])
def test_broken_builders_are_named(monkeypatch, target, error, match) -> None:
    monkeypatch.setattr(networks, "FAMILIES", dict(networks.FAMILIES))
    networks.register_family(Family("broken", "broken", target, "any", lambda d: True, (1,)))
    with pytest.raises(error, match=match):
        build_model(4, "broken")


@pytest.mark.parametrize("kwargs,match", [
    ({"shortcut": "C"}, "unknown shortcut 'C'; choose one of A, B"),
    ({"survival": "dropout"}, "unknown survival rule 'dropout'"),
    ({"p_last": 0.0}, r"must be in \(0, 1\]"),
    ({"num_classes": 0}, "num_classes must be an integer >= 1"),
    ({"image_size": 48}, "image size 48"),
    ({"arch": "vgg"}, "unknown architecture 'vgg'; choose one of cifar, bottleneck"),
])
def test_bad_settings_raise_one_spec_error_line(kwargs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        build_model(20, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("flags,message", [
    (["--depth", "110", "--arch", "densenet"], "invalid choice: 'densenet' (choose from"),
    (["--depth", "32", "--arch", "preact-bottleneck"], ("depth 32 fits no pre-activation "
     "bottleneck ResNet (--arch preact-bottleneck); valid depths: preact-bottleneck: 9n+2")),
])
def test_cli_architecture_errors_are_one_line(flags, message, tmp_path, capsys) -> None:
    args = ["train", "--data", str(tmp_path), "--dataset", "cifar10", "--out",
            str(tmp_path / "o"), *flags]
    try:
        status = cli.main(args)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    if "densenet" in message:  # argparse's list is the registry's (quoted or not, per Python)
        assert all(name in err for name in networks.families())
    assert not (tmp_path / "o").exists()
