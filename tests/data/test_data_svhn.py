"""SVHN: fake .mat files, per-file download, streamed prepare (split, labels, determinism), and
every bad input giving one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sdnet import cli
from sdnet.data import download, fake_prepared, get_dataset, load_prepared, make_fake, prepare
from sdnet.data.download import md5_of
from sdnet.errors import SdnetError

FILES = ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")
VAL = {"train": 10, "extra": 5}  # what fake_prepared takes from the default small fake


@pytest.fixture(scope="module")
def svhn_fake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default small fake: 600 train, 200 test, 400 extra images (per digit 60/20/40)."""
    return make_fake("svhn", tmp_path_factory.mktemp("svhn") / "mirror")


@pytest.fixture(scope="module")
def svhn_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_prepared("svhn", tmp_path_factory.mktemp("svhn_prepared"))


def _copy_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for name in FILES:
        if name not in skip:
            (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _raw(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    mat = scipy.io.loadmat(folder / name)
    return mat["X"], mat["y"]


def _rows(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Each (image, label) pair as bytes, sorted: compares splits as multisets."""
    return sorted(img.tobytes() + bytes([int(label)]) for img, label in zip(images, labels))


# --- fakes ----------------------------------------------------------------------------------

def test_fake_files_are_mat_v5_with_svhn_layout(svhn_fake: Path) -> None:
    assert sorted(p.name for p in svhn_fake.iterdir()) == sorted(FILES)
    for name, n in (("train_32x32.mat", 600), ("test_32x32.mat", 200), ("extra_32x32.mat", 400)):
        assert (svhn_fake / name).read_bytes()[:10] == b"MATLAB 5.0"
        x, y = _raw(svhn_fake, name)
        assert x.dtype == np.uint8 and x.shape == (32, 32, 3, n) and y.shape == (n, 1)
        assert sorted(np.unique(y).tolist()) == list(range(1, 11))  # digit 0 stored as 10
        assert np.bincount(y.ravel())[1:].tolist() == [n // 10] * 10


def test_fakes_are_byte_reproducible(svhn_fake: Path, tmp_path: Path) -> None:
    again = make_fake("svhn", tmp_path / "again")
    other = make_fake("svhn", tmp_path / "other", seed=1)
    for name in FILES:
        assert (again / name).read_bytes() == (svhn_fake / name).read_bytes(), name
        assert (other / name).read_bytes() != (svhn_fake / name).read_bytes(), name


def test_torchvision_reads_fake_with_same_pixels_and_labels(
        svhn_fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.svhn as tv_svhn

    # torchvision checks the real files' md5s, which a fake cannot match.
    monkeypatch.setattr(tv_svhn.SVHN, "_check_integrity", lambda self: True)
    prepare("svhn", svhn_fake, tmp_path / "p", val_per_class={"train": 0, "extra": 0})
    ours = load_prepared(tmp_path / "p")
    tv = {split: tv_svhn.SVHN(str(svhn_fake), split=split, download=False)
          for split in ("train", "test", "extra")}
    as_nhwc = {split: d.data.transpose(0, 2, 3, 1) for split, d in tv.items()}  # from N,C,H,W
    # Without a validation set, train is train then extra, in file order; test is test.
    np.testing.assert_array_equal(ours.test[0], as_nhwc["test"])
    np.testing.assert_array_equal(ours.test[1], tv["test"].labels)
    np.testing.assert_array_equal(ours.train[0], np.concatenate([as_nhwc["train"],
                                                                 as_nhwc["extra"]]))
    np.testing.assert_array_equal(ours.train[1], np.concatenate([tv["train"].labels,
                                                                 tv["extra"].labels]))
    assert ours.val is None and 0 in ours.test[1] and 10 not in ours.test[1]
    image, label = tv["test"][0]  # torchvision's PIL image is our row-major HWC array
    np.testing.assert_array_equal(np.asarray(image), ours.test[0][0])
    assert label == ours.test[1][0]


def test_fake_digits_are_learnable(svhn_prepared: Path) -> None:
    """Nearest class-mean colour beats chance (10 %) by far, as for the CIFAR-10 fake."""
    data = load_prepared(svhn_prepared)
    feats = {k: split[0].reshape(len(split[0]), -1, 3).mean(1) for k, split in
             (("train", data.train), ("test", data.test))}
    centroids = np.stack([feats["train"][data.train[1] == c].mean(0) for c in range(10)])
    guess = np.argmin(((feats["test"][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == data.test[1]).mean() > 0.5


# --- prepare --------------------------------------------------------------------------------

def test_prepare_split_sizes_labels_and_meta(svhn_prepared: Path, svhn_fake: Path) -> None:
    data = load_prepared(svhn_prepared)
    assert data.meta["counts"] == {"train": 600 + 400 - 150, "val": 150, "test": 200}
    assert data.meta["classes"] == [str(d) for d in range(10)] and data.meta["num_classes"] == 10
    assert data.meta["use_extra"] is True and data.meta["val_per_class"] == VAL
    assert data.meta["val_size"] == 150 and data.meta["dataset"] == "svhn"
    assert set(data.meta["source_md5"]) == set(FILES)
    assert data.meta["source_md5"]["extra_32x32.mat"] == md5_of(svhn_fake / "extra_32x32.mat")
    assert np.bincount(data.val[1]).tolist() == [15] * 10  # 10 per digit from train, 5 from extra
    # Every validation image comes from the file it should, with its label (10 read as 0).
    raw = {}
    for name in ("train_32x32.mat", "extra_32x32.mat"):
        x, y = _raw(svhn_fake, name)
        raw[name] = {img.tobytes(): int(lab) % 10 for img, lab in
                     zip(x.transpose(3, 0, 1, 2), y.ravel())}
    origin = [next(n for n in raw if img.tobytes() in raw[n]) for img in data.val[0]]
    for digit in range(10):
        mine = [o for o, lab in zip(origin, data.val[1]) if lab == digit]
        assert mine.count("train_32x32.mat") == 10 and mine.count("extra_32x32.mat") == 5
    for img, lab in zip(data.val[0], data.val[1]):
        assert raw["train_32x32.mat"].get(img.tobytes(), raw["extra_32x32.mat"].get(
            img.tobytes())) == lab
    # train + val is exactly train + extra.
    every = np.concatenate([data.train[0], data.val[0]]), np.concatenate([data.train[1],
                                                                         data.val[1]])
    expected = [(x.transpose(3, 0, 1, 2), y.ravel() % 10) for x, y in
                (_raw(svhn_fake, n) for n in ("train_32x32.mat", "extra_32x32.mat"))]
    assert _rows(*every) == _rows(np.concatenate([e[0] for e in expected]),
                                  np.concatenate([e[1] for e in expected]))


def test_prepare_is_deterministic_and_seeded(svhn_fake: Path, svhn_prepared: Path,
                                             tmp_path: Path) -> None:
    for name in ("a", "b"):
        prepare("svhn", svhn_fake, tmp_path / name, val_per_class=VAL)
    for file in ("train.npz", "val.npz", "test.npz", "meta.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        # fake_prepared downloads the same files through file:// URLs first: same arrays.
        if file != "meta.json":
            assert (tmp_path / "a" / file).read_bytes() == (svhn_prepared / file).read_bytes()
    prepare("svhn", svhn_fake, tmp_path / "c", val_per_class=VAL, split_seed=1)
    assert (tmp_path / "c" / "val.npz").read_bytes() != (tmp_path / "a" / "val.npz").read_bytes()
    assert load_prepared(tmp_path / "c").meta["split_seed"] == 1


def test_use_extra_false_reads_train_only(svhn_fake: Path, tmp_path: Path) -> None:
    folder = _copy_folder(svhn_fake, tmp_path / "no_extra", skip=("extra_32x32.mat",))
    meta = prepare("svhn", folder, tmp_path / "p", use_extra=False,
                   val_per_class={"train": 10, "extra": 5})
    assert meta["counts"] == {"train": 500, "val": 100, "test": 200}
    assert meta["use_extra"] is False and meta["val_per_class"] == {"train": 10}
    assert set(meta["source_md5"]) == {"train_32x32.mat", "test_32x32.mat"}
    data = load_prepared(tmp_path / "p")
    x, y = _raw(svhn_fake, "train_32x32.mat")
    assert _rows(np.concatenate([data.train[0], data.val[0]]),
                 np.concatenate([data.train[1], data.val[1]])) == \
        _rows(x.transpose(3, 0, 1, 2), y.ravel() % 10)


def test_cli_prepare_flags(svhn_fake: Path, tmp_path: Path) -> None:
    argv = ["data", "prepare", "--dataset", "svhn", "--archive", str(svhn_fake),
            "--no-use-extra", "--val-per-class-train", "3", "--split-seed", "2",
            "--out", str(tmp_path / "p")]
    assert cli.main(argv) == 0
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["counts"] == {"train": 570, "val": 30, "test": 200}
    assert meta["use_extra"] is False and meta["split_seed"] == 2


def test_fake_prepared_scales_validation_to_the_fake() -> None:
    svhn = get_dataset("svhn")
    assert svhn.fake_options() == {"val_per_class": VAL}
    assert svhn.fake_options(12) == {"val_per_class": {"train": 2, "extra": 1}}


# --- download -------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["path", "file-url", "file-url-slash"])
def test_download_one_file_from_a_folder(svhn_fake: Path, tmp_path: Path, form: str) -> None:
    url = {"path": str(svhn_fake), "file-url": svhn_fake.as_uri(),
           "file-url-slash": svhn_fake.as_uri() + "/"}[form]
    name = "test_32x32.mat"
    out = download("svhn", tmp_path / "raw", url=url, md5=md5_of(svhn_fake / name), file=name)
    assert out == tmp_path / "raw" / name
    assert out.read_bytes() == (svhn_fake / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [name]  # nothing else


def test_wrong_md5_on_one_file_names_it(svhn_fake: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    wrong = "0" * 32
    argv = ["data", "download", "--dataset", "svhn", "--file", "extra_32x32.mat",
            "--url", str(svhn_fake), "--md5", wrong, "--out", str(tmp_path / "raw")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdnet: error:")
    assert "extra_32x32.mat" in err[0] and wrong in err[0]
    assert md5_of(svhn_fake / "extra_32x32.mat") in err[0]
    assert list((tmp_path / "raw").iterdir()) == []  # the bad file was not kept


def test_default_md5_is_the_official_one_per_file(svhn_fake: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="train_32x32.mat.*e26dedcc434d2e4c54c9b2d4a06d8373"):
        download("svhn", tmp_path, url=str(svhn_fake), file="train_32x32.mat")


@pytest.mark.parametrize("file", [None, "train.mat"])
def test_download_needs_one_of_the_three_files(file: str | None, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    argv = ["data", "download", "--dataset", "svhn", "--out", str(tmp_path)]
    assert cli.main(argv + (["--file", file] if file else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(name in err[0] for name in FILES)


def test_unknown_url_scheme_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["data", "download", "--dataset", "svhn", "--file", "test_32x32.mat",
            "--url", "ftp://mirror.example/svhn/", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsupported URL scheme 'ftp'" in err[0]
    with pytest.raises(SdnetError, match="scheme 's3'"):
        download("cifar10", tmp_path, url="s3://bucket/cifar-10-python.tar.gz")


# --- bad input ------------------------------------------------------------------------------

def _bad_folder(svhn_fake: Path, tmp_path: Path, name: str, payload: bytes) -> Path:
    folder = _copy_folder(svhn_fake, tmp_path / "bad")
    (folder / name).write_bytes(payload)
    return folder


def _savemat_bytes(tmp_path: Path, variables: dict) -> bytes:
    path = tmp_path / "made.mat"
    scipy.io.savemat(path, variables)
    return path.read_bytes()


def _v73_header() -> bytes:
    """The first bytes of a MATLAB v7.3 file: 116 bytes of text, subsystem offset, version 0x0200
    and the endian marker, then HDF5 (whose superblock starts at byte 512)."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    return text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM" + b"\0" * 384 + b"\x89HDF\r\n\x1a\n"


@pytest.mark.parametrize(("name", "payload", "message"), [
    ("train_32x32.mat", b"<html><body>404 Not Found</body></html>" * 4, "not a MATLAB"),
    ("test_32x32.mat", _v73_header(), "v7.3"),
    ("extra_32x32.mat", b"", "not a MATLAB"),
], ids=["html", "v7.3", "empty"])
def test_non_v5_files_are_refused_naming_them(svhn_fake: Path, tmp_path: Path, name: str,
                                              payload: bytes, message: str) -> None:
    folder = _bad_folder(svhn_fake, tmp_path, name, payload)
    with pytest.raises(SdnetError, match=message) as err:
        prepare("svhn", folder, tmp_path / "out", val_per_class=VAL)
    assert str(folder / name) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_mat_without_x_or_y_or_with_mismatched_lengths(svhn_fake: Path, tmp_path: Path) -> None:
    x = np.zeros((32, 32, 3, 20), np.uint8)
    cases = [({"Z": x, "y": np.ones((20, 1), np.uint8)}, "no 'X'"),
             ({"X": x}, "no 'y'"),
             ({"X": x, "y": np.ones((19, 1), np.uint8)}, "mismatched lengths"),
             ({"X": np.zeros((32, 32, 20), np.uint8), "y": np.ones((20, 1))}, r"\(32, 32, 3, N\)"),
             ({"X": x, "y": np.full((20, 1), 11.0)}, r"1\.\.10")]
    for i, (variables, message) in enumerate(cases):
        folder = _copy_folder(svhn_fake, tmp_path / f"case{i}")
        (folder / "train_32x32.mat").write_bytes(_savemat_bytes(tmp_path, variables))
        with pytest.raises(SdnetError, match=message) as err:
            prepare("svhn", folder, tmp_path / "out", val_per_class={"train": 0, "extra": 0})
        assert "train_32x32.mat" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("cut", "message"), [(500_000, "not truncated"), (10, "unreadable")],
                         ids=["in-X", "in-y"])
def test_truncated_mat_is_one_line(svhn_fake: Path, tmp_path: Path, cut: int,
                                   message: str) -> None:
    """Cut inside X, the file's headers show no y; cut inside y, loading it fails."""
    data = (svhn_fake / "extra_32x32.mat").read_bytes()
    folder = _bad_folder(svhn_fake, tmp_path, "extra_32x32.mat", data[:-cut])
    with pytest.raises(SdnetError, match=message) as err:
        prepare("svhn", folder, tmp_path / "out", val_per_class=VAL)
    assert "extra_32x32.mat" in str(err.value) and "\n" not in str(err.value)


def test_missing_file_names_it(svhn_fake: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    folder = _copy_folder(svhn_fake, tmp_path / "partial", skip=("extra_32x32.mat",))
    argv = ["data", "prepare", "--dataset", "svhn", "--archive", str(folder),
            "--val-per-class-train", "10", "--val-per-class-extra", "5", "--out",
            str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(folder / "extra_32x32.mat") in err[0]
    assert "--file extra_32x32.mat" in err[0] and not (tmp_path / "out").exists()


def test_val_per_class_larger_than_a_class(svhn_fake: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="extra = 41 needs 410 images, more than the 400 in "
                                         ".*extra_32x32.mat"):
        prepare("svhn", svhn_fake, tmp_path / "out", val_per_class={"train": 10, "extra": 41})
    with pytest.raises(SdnetError, match="train = 400 needs 4000 images"):
        prepare("svhn", svhn_fake, tmp_path / "out")  # the paper's 400/200 need the real files
    # Enough images in all, but digit 0 (stored as 10) has only 2.
    labels = np.concatenate([np.repeat(np.arange(1, 10), 4), [10, 10]]).reshape(-1, 1)
    x = np.zeros((32, 32, 3, len(labels)), np.uint8)
    folder = _bad_folder(svhn_fake, tmp_path, "train_32x32.mat",
                         _savemat_bytes(tmp_path, {"X": x, "y": labels.astype(np.uint8)}))
    with pytest.raises(SdnetError, match="train = 3 is more than the 2 images of digit 0 in "
                                         ".*train_32x32.mat"):
        prepare("svhn", folder, tmp_path / "out", val_per_class={"train": 3, "extra": 0})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val_size": 100}, "svhn takes no val_size"),
    ({"val_per_class": {"valid": 3}}, "unknown key 'valid'"),
    ({"val_per_class": {"train": -1}}, "train must be an integer >= 0"),
])
def test_bad_svhn_options(svhn_fake: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(SdnetError, match=message):
        prepare("svhn", svhn_fake, tmp_path / "out", **kwargs)


def test_svhn_options_are_refused_for_other_data_sets(tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="cifar10 takes no use_extra; its split options are "
                                         "val_size"):
        prepare("cifar10", tmp_path / "x.tar.gz", tmp_path / "out", use_extra=False)
    with pytest.raises(SdnetError, match="train_32x32.mat not found: for svhn --archive is the "
                                         "folder"):
        prepare("svhn", tmp_path / "train_32x32.mat", tmp_path / "out")
    (tmp_path / "file.mat").write_bytes(b"x")
    with pytest.raises(SdnetError, match="file.mat is a file"):
        prepare("svhn", tmp_path / "file.mat", tmp_path / "out")


def test_cli_fake_writes_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["data", "fake", "--format", "svhn", "--per-class", "3", "--out",
                     str(tmp_path / "f")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "f")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == sorted(FILES)
    assert _raw(tmp_path / "f", "extra_32x32.mat")[0].shape == (32, 32, 3, 30)


def test_prepare_memory_is_one_input_file_plus_the_outputs(tmp_path: Path) -> None:
    """The streaming design, measured with tracemalloc (numpy reports its buffers to it): the
    peak over prepare stays within the output arrays plus the largest input X plus small fixed
    temporaries; holding a second copy of a file (or all files at once) would exceed it."""
    import tracemalloc

    counts = {"train_32x32.mat": 30_000, "test_32x32.mat": 10_000, "extra_32x32.mat": 30_000}
    folder = tmp_path / "mats"
    folder.mkdir()
    for name, n in counts.items():  # plain uncompressed v5 files: quick to write
        labels = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(-1, 1)
        x = np.zeros((32, 32, 3, n), np.uint8, order="F")
        x[0, 0, 0] = labels.ravel()  # some content per image
        scipy.io.savemat(folder / name, {"X": x, "y": labels})
    image = 32 * 32 * 3
    outputs = sum(counts.values()) * image
    largest_input = max(counts.values()) * image
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        meta = prepare("svhn", folder, tmp_path / "out", val_per_class={"train": 50, "extra": 50})
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert meta["counts"] == {"train": 59_000, "val": 1000, "test": 10_000}
    assert peak <= outputs + largest_input + 48 * 2**20, f"peak {peak / 2**20:.0f} MiB"
