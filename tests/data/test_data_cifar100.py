"""CIFAR-100: the fake archive, torchvision reading it, prepare on the 100 fine labels, and a
damaged archive (no meta, no train) giving one line."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sdnet import cli
from sdnet.data import download, fake_prepared, get_dataset, load_prepared, make_fake, prepare
from sdnet.data.cifar import CIFAR100_COARSE_CLASSES
from sdnet.data.download import md5_of
from sdnet.errors import SdnetError

MEMBERS = ["cifar-100-python", "cifar-100-python/file.txt~", "cifar-100-python/meta",
           "cifar-100-python/test", "cifar-100-python/train"]


@pytest.fixture(scope="module")
def cifar100_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake cifar-100-python.tar.gz with 20 train and 10 test images per class."""
    return make_fake("cifar100", tmp_path_factory.mktemp("c100"), per_class=20)


@pytest.fixture(scope="module")
def cifar100_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default fake (40 train + 10 test per class) through download and prepare."""
    return fake_prepared("cifar100", tmp_path_factory.mktemp("c100_prepared"))


def test_fake_archive_layout_and_reproducibility(cifar100_archive: Path, tmp_path: Path) -> None:
    assert cifar100_archive.name == "cifar-100-python.tar.gz"
    with tarfile.open(cifar100_archive) as tar:
        assert sorted(tar.getnames()) == MEMBERS
    again = make_fake("cifar100", tmp_path / "a.tar.gz", per_class=20)
    assert again.read_bytes() == cifar100_archive.read_bytes()
    assert make_fake("cifar100", tmp_path / "b.tar.gz", per_class=20, seed=1).read_bytes() != \
        cifar100_archive.read_bytes()


def test_torchvision_reads_fake_with_same_pixels_and_labels(
        cifar100_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import torchvision.datasets.cifar as tv_cifar

    with tarfile.open(cifar100_archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    # torchvision checks each file against the real data set's md5s, which a fake cannot match.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    meta = prepare("cifar100", cifar100_archive, tmp_path / "p", val_size=0)
    ours = load_prepared(tmp_path / "p")
    for train, (images, labels) in ((True, ours.train), (False, ours.test)):
        tv = tv_cifar.CIFAR100(str(tmp_path / "x"), train=train, download=False)
        np.testing.assert_array_equal(tv.data, images)
        np.testing.assert_array_equal(np.asarray(tv.targets), labels)
        assert tv.classes == list(get_dataset("cifar100").classes) == meta["classes"]
    raw = pickle.loads((tmp_path / "x/cifar-100-python/train").read_bytes(), encoding="latin1")
    assert set(raw) == {"filenames", "batch_label", "fine_labels", "coarse_labels", "data"}
    assert max(raw["coarse_labels"]) == len(CIFAR100_COARSE_CLASSES) - 1


def test_prepare_uses_the_100_fine_labels(cifar100_prepared: Path) -> None:
    data = load_prepared(cifar100_prepared)
    assert data.meta["counts"] == {"train": 3600, "val": 400, "test": 1000}
    assert data.meta["num_classes"] == 100 and len(data.meta["classes"]) == 100
    assert data.meta["classes"][:3] == ["apple", "aquarium_fish", "baby"]
    assert data.meta["val_size"] == 400 and data.meta["dataset"] == "cifar100"
    assert np.bincount(data.test[1]).tolist() == [10] * 100
    assert np.bincount(np.concatenate([data.train[1], data.val[1]])).tolist() == [40] * 100


def test_prepare_is_deterministic_and_seeded(cifar100_archive: Path, tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 3)):
        prepare("cifar100", cifar100_archive, tmp_path / name, val_size=100, split_seed=seed)
    for file in ("train.npz", "val.npz", "test.npz", "meta.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "c" / "val.npz").read_bytes() != (tmp_path / "a" / "val.npz").read_bytes()
    with pytest.raises(SdnetError, match="val_size"):
        prepare("cifar100", cifar100_archive, tmp_path / "d", val_size=2000)


def test_fake_classes_are_learnable(cifar100_prepared: Path) -> None:
    """Phase-invariant features (mean colour, stripe spectrum along rows and columns) with a
    nearest class mean beat chance (1 %) by far: a ResNet has much more to go on."""
    data = load_prepared(cifar100_prepared)

    def features(images: np.ndarray) -> np.ndarray:
        pixels = images.astype(np.float32)
        rows, cols = pixels.mean((2, 3)), pixels.mean((1, 3))  # (n, 32) profiles
        spectrum = [np.abs(np.fft.rfft(p - p.mean(1, keepdims=True)))[:, 1:8] for p in (rows, cols)]
        return np.concatenate([pixels.mean((1, 2)), *spectrum], axis=1)

    train, test = features(data.train[0]), features(data.test[0])
    scale = train.std(0) + 1e-6
    centroids = np.stack([train[data.train[1] == c].mean(0) for c in range(100)]) / scale
    guess = np.argmin((((test / scale)[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == data.test[1]).mean() > 0.5


def _without(archive: Path, out: Path, drop: str) -> Path:
    """A copy of the archive less one member."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            if member.name != drop:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out


@pytest.mark.parametrize("member", ["meta", "train", "test"])
def test_archive_missing_a_member_is_one_line(cifar100_archive: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture,
                                              member: str) -> None:
    bad = _without(cifar100_archive, tmp_path / "bad.tar.gz", f"cifar-100-python/{member}")
    argv = ["data", "prepare", "--dataset", "cifar100", "--archive", str(bad), "--out",
            str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and f"cifar-100-python/{member}" in err[0]
    assert "cifar-100-python.tar.gz" in err[0] and not (tmp_path / "out").exists()


def test_cifar10_archive_is_not_cifar100(tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="cifar-100-python/meta"):
        prepare("cifar100", make_fake("cifar10", tmp_path / "c10.tgz"), tmp_path / "out")


def test_wrong_label_names_are_refused(cifar100_archive: Path, tmp_path: Path) -> None:
    from sdnet.data.fake import Py2Str, py2_pickle

    bad = tmp_path / "names.tar.gz"
    meta = py2_pickle({Py2Str(b"fine_label_names"): [Py2Str(b"x")] * 100})
    with tarfile.open(cifar100_archive) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            payload = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("/meta"):
                payload, member.size = meta, len(meta)
            dst.addfile(member, io.BytesIO(payload) if payload is not None else None)
    with pytest.raises(SdnetError, match="fine_label_names"):
        prepare("cifar100", bad, tmp_path / "out")


def test_download_defaults_to_the_archive(cifar100_archive: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    out = download("cifar100", tmp_path / "raw", url=str(cifar100_archive),
                   md5=md5_of(cifar100_archive))
    assert out == tmp_path / "raw" / "cifar-100-python.tar.gz"
    with pytest.raises(SdnetError, match="eb9058c3a382ffc7106e4002c42a8d85"):  # official md5
        download("cifar100", tmp_path / "raw2", url=str(cifar100_archive))
    argv = ["data", "download", "--dataset", "cifar100", "--file", "cifar-10-python.tar.gz",
            "--url", str(cifar100_archive), "--out", str(tmp_path / "raw3")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cifar-100-python.tar.gz" in err[0]


def test_cli_fake_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mirror").mkdir()
    assert cli.main(["data", "fake", "--format", "cifar100", "--per-class", "2", "--out",
                     str(tmp_path / "mirror")]) == 0
    path = tmp_path / "mirror" / "cifar-100-python.tar.gz"
    assert capsys.readouterr().out.strip() == str(path) and path.is_file()
