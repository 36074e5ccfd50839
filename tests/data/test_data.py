"""sdnet.data: download/verify, safe extraction, prepare, fakes, prepared folders, DeviceLoader."""

from __future__ import annotations

import importlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdnet import cli
from sdnet.data import DeviceLoader, crop_flip, download, load_prepared, make_fake, prepare
from sdnet.data.archive import load_pickle
from sdnet.data.cifar import CIFAR10_CLASSES as CLASSES
from sdnet.data.download import md5_of
from sdnet.data.fake import image_mode as png_mode
from sdnet.errors import SdnetError

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name: str, payload: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


# --- download -------------------------------------------------------------------------------

def test_download_file_url_with_right_md5(cifar10_archive: Path, tmp_path: Path) -> None:
    out = download("cifar10", tmp_path / "raw", url=cifar10_archive.as_uri(),
                   md5=md5_of(cifar10_archive))
    assert out == tmp_path / "raw" / "cifar-10-python.tar.gz"
    assert out.read_bytes() == cifar10_archive.read_bytes()
    assert _files(tmp_path / "raw") == ["cifar-10-python.tar.gz"]  # no temporary left over


def test_download_plain_path_and_skip_when_present(cinic10_archive: Path, tmp_path: Path) -> None:
    md5 = md5_of(cinic10_archive)
    out = download("cinic10", tmp_path, url=str(cinic10_archive), md5=md5)
    assert out.name == "CINIC-10.tar.gz" and md5_of(out) == md5
    stamp = out.stat().st_mtime_ns
    # Present and verified: nothing is fetched, so even a missing source is fine.
    assert download("cinic10", tmp_path, url=str(tmp_path / "gone.tgz"), md5=md5) == out
    assert out.stat().st_mtime_ns == stamp


def test_download_replaces_a_bad_existing_file(cifar10_archive: Path, tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"stale")
    out = download("cifar10", tmp_path, url=str(cifar10_archive), md5=md5_of(cifar10_archive))
    assert out.read_bytes() == cifar10_archive.read_bytes()


def test_download_wrong_md5_names_file_and_both_checksums(cifar10_archive: Path,
                                                          tmp_path: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef"
    with pytest.raises(SdnetError) as err:
        download("cifar10", tmp_path, url=cifar10_archive.as_uri(), md5=wrong)
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and wrong in message
    assert md5_of(cifar10_archive) in message
    assert _files(tmp_path) == []


def test_a_malformed_md5_is_refused_before_fetching(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cifar-10-python.tar.gz"  # never opened: refused first
    with pytest.raises(SdnetError, match="'xyz' for cifar-10-python.tar.gz is not an md5"):
        download("cifar10", tmp_path / "out", url=str(missing), md5="xyz")
    assert not (tmp_path / "out").exists()


def test_download_truncated_archive(cifar10_archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(cifar10_archive.read_bytes()[:50_000])
    with pytest.raises(SdnetError, match="md5 mismatch"):
        download("cifar10", tmp_path / "a", url=str(cut), md5=md5_of(cifar10_archive))
    with pytest.raises(SdnetError, match="truncated"):  # even without a checksum
        download("cifar10", tmp_path / "b", url=str(cut), md5="none")
    assert _files(tmp_path / "a") == [] and _files(tmp_path / "b") == []


def test_download_without_md5_refuses_a_truncated_zip(tmp_path: Path) -> None:
    import zipfile

    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as zf:
        zf.writestr("a/b.txt", b"x" * 5000)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:-40])  # the central directory is written last
    with pytest.raises(SdnetError, match="truncated or corrupt archive"):
        download("cifar10", tmp_path / "out", url=str(cut), md5="none")
    assert _files(tmp_path / "out") == []
    assert download("cifar10", tmp_path / "ok", url=str(whole), md5="none").is_file()


def test_download_md5_none_logs_actual_md5(cinic10_archive: Path, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    out = download("cinic10", tmp_path, url=str(cinic10_archive), md5="none")
    assert out.is_file() and md5_of(cinic10_archive) in caplog.text


def test_download_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="could not fetch"):
        download("cifar10", tmp_path, url=(tmp_path / "nope.tgz").as_uri(), md5="none")


def test_cli_download_prints_path_and_fails_in_one_line(cifar10_archive: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    argv = ["data", "download", "--dataset", "cifar10", "--url", cifar10_archive.as_uri(),
            "--out", str(tmp_path / "raw")]
    assert cli.main([*argv, "--md5", md5_of(cifar10_archive)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "raw" / "cifar-10-python.tar.gz")
    (tmp_path / "raw" / "cifar-10-python.tar.gz").unlink()
    assert cli.main([*argv, "--md5", "f" * 32]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdnet: error:") and "f" * 32 in err[0]
    assert not (tmp_path / "raw" / "cifar-10-python.tar.gz").exists()


# --- safe extraction ------------------------------------------------------------------------

def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize("member", [
    _file("../escape.txt"),
    _file("/tmp/sdnet-absolute-escape.txt"),
    _link("cifar-10-batches-py/evil", "../../../etc/passwd"),
], ids=["dotdot", "absolute", "symlink-out"])
def test_unsafe_members_are_refused(member: tuple, tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "evil.tar.gz", [_file("cifar-10-batches-py/readme"), member])
    out = tmp_path / "work" / "prepared"
    with pytest.raises(SdnetError) as err:
        prepare("cifar10", archive, out)
    assert "evil.tar.gz" in str(err.value) and member[0].name in str(err.value)
    assert not out.exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/sdnet-absolute-escape.txt").exists()
    assert not (tmp_path / "work").exists() or _files(tmp_path / "work") == []


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    with pytest.raises(SdnetError, match="data_batch_1.*not allowed"):
        load_pickle(pickle.dumps({"data": Evil()}, protocol=2), "data_batch_1")


def test_prepare_refuses_wrong_or_corrupt_archive(cinic10_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="cifar-10-batches-py"):
        prepare("cifar10", cinic10_archive, tmp_path / "out")
    with pytest.raises(SdnetError, match="CINIC-10"):
        prepare("cinic10", make_fake("cifar10", tmp_path / "c.tgz"), tmp_path / "out")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(cinic10_archive.read_bytes()[:3000])
    with pytest.raises(SdnetError, match="bad.tar.gz"):
        prepare("cinic10", bad, tmp_path / "out")
    with pytest.raises(SdnetError, match="sdnet data download"):
        prepare("cinic10", tmp_path / "missing.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- fakes ----------------------------------------------------------------------------------

def test_fakes_are_byte_reproducible(tmp_path: Path, cifar10_archive: Path,
                                     cinic10_archive: Path) -> None:
    assert make_fake("cifar10", tmp_path / "a.tgz").read_bytes() == cifar10_archive.read_bytes()
    assert make_fake("cinic10", tmp_path / "b.tgz").read_bytes() == cinic10_archive.read_bytes()
    assert make_fake("cifar10", tmp_path / "c.tgz", seed=1).read_bytes() != \
        cifar10_archive.read_bytes()


def test_fake_cifar_pickles_read_like_python2_ones(cifar10_archive: Path, tmp_path: Path) -> None:
    with tarfile.open(cifar10_archive) as tar:
        names = sorted(tar.getnames())
        raw = tar.extractfile("cifar-10-batches-py/data_batch_1").read()
    assert names == ["cifar-10-batches-py", "cifar-10-batches-py/batches.meta",
                     *[f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
                     "cifar-10-batches-py/test_batch"]
    as_bytes = pickle.loads(raw, encoding="bytes")
    as_latin1 = pickle.loads(raw, encoding="latin1")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert set(as_latin1) == {"batch_label", "labels", "data", "filenames"}
    assert as_latin1["data"].shape == (120, 3072) and as_latin1["data"].dtype == np.uint8
    np.testing.assert_array_equal(as_bytes[b"data"], as_latin1["data"])


def test_torchvision_reads_fake_cifar_with_same_pixels(cifar10_archive: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    with tarfile.open(cifar10_archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    # torchvision checks each file against the real data set's md5s, which a fake cannot match.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    ours = prepare("cifar10", cifar10_archive, tmp_path / "p", val_size=0)
    prepared = load_prepared(tmp_path / "p")
    for train, (images, labels) in ((True, prepared.train), (False, prepared.test)):
        tv = tv_cifar.CIFAR10(str(tmp_path / "x"), train=train, download=False)
        np.testing.assert_array_equal(tv.data, images)
        np.testing.assert_array_equal(np.asarray(tv.targets), labels)
        assert tv.classes == list(CLASSES) == ours["classes"]


def test_fake_patterns_are_learnable(prepared_cifar10: Path) -> None:
    """Nearest class-mean colour already beats chance by far; a ResNet has much more to go on."""
    data = load_prepared(prepared_cifar10)
    feats = {k: split[0].reshape(len(split[0]), -1, 3).mean(1) for k, split in
             (("train", data.train), ("test", data.test))}
    centroids = np.stack([feats["train"][data.train[1] == c].mean(0) for c in range(10)])
    guess = np.argmin(((feats["test"][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == data.test[1]).mean() > 0.5


# --- prepare --------------------------------------------------------------------------------

def _check_prepared(folder: Path, counts: dict[str, int]) -> None:
    data = load_prepared(folder)
    assert data.meta["counts"] == counts and data.meta["classes"] == list(CLASSES)
    assert _files(folder) == sorted(["meta.json", *(f"{k}.npz" for k in counts)])
    for name, n in counts.items():
        images, labels = getattr(data, name)
        assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert set(np.unique(labels)) <= set(range(10))
    assert len(data.meta["mean"]) == 3 and all(0 < s < 1 for s in data.meta["std"])
    mean = data.train[0].reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(data.meta["mean"], mean, atol=1e-6)


def test_prepare_cifar10(prepared_cifar10: Path) -> None:
    _check_prepared(prepared_cifar10, {"train": 540, "val": 60, "test": 200})
    meta = json.loads((prepared_cifar10 / "meta.json").read_text())
    assert meta["dataset"] == "cifar10" and meta["val_size"] == 60 and meta["split_seed"] == 0
    assert meta["format_version"] == 1 and len(meta["source_md5"]) == 32
    data = load_prepared(prepared_cifar10)
    assert np.bincount(data.test[1]).tolist() == [20] * 10


def test_prepare_cinic10_labels_and_rgb(prepared_cinic10: Path, cinic10_archive: Path) -> None:
    _check_prepared(prepared_cinic10, {"train": 200, "val": 200, "test": 200})
    data = load_prepared(prepared_cinic10)
    # Files are sorted per class folder, classes in CIFAR-10's order.
    assert data.train[1].tolist() == np.repeat(np.arange(10), 20).tolist()
    images = data.train[0].astype(int)
    grey = np.array([png_mode(i) == "L" for i in range(200)])
    equal = (images[..., 0] == images[..., 1]).all((1, 2)) & \
        (images[..., 1] == images[..., 2]).all((1, 2))
    assert grey.any() and equal[grey].all() and not equal[~grey].any()
    with tarfile.open(cinic10_archive) as tar:  # a palette PNG decodes to the same RGB pixels
        k = next(i for i in range(200) if png_mode(i) == "P")
        png = tar.extractfile(f"train/airplane/fake-train-{k:06d}.png").read()
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), data.train[0][k])


def test_prepare_cinic10_val_options(cinic10_archive: Path, tmp_path: Path) -> None:
    assert prepare("cinic10", cinic10_archive, tmp_path / "a", val_size=0)["counts"] == \
        {"train": 200, "test": 200}
    assert not (tmp_path / "a" / "val.npz").exists()
    meta = prepare("cinic10", cinic10_archive, tmp_path / "b", val_size=50)
    assert meta["counts"]["val"] == 50 and meta["val_size"] == 50
    with pytest.raises(SdnetError, match="val_size"):
        prepare("cinic10", cinic10_archive, tmp_path / "c", val_size=201)


def test_cinic_pool_decoding_gives_the_same_bytes(cinic10_archive: Path, prepared_cinic10: Path,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks force the process pool that full-size archives use; the output must not
    depend on it."""
    # The package's `prepare` attribute is the function; the module is reached by its full name.
    monkeypatch.setattr(importlib.import_module("sdnet.data.images"), "DECODE_CHUNK", 64)
    prepare("cinic10", cinic10_archive, tmp_path / "pool", workers=2)
    for name in _files(prepared_cinic10):
        assert (tmp_path / "pool" / name).read_bytes() == (prepared_cinic10 / name).read_bytes()


def test_prepare_is_idempotent(cifar10_archive: Path, prepared_cifar10: Path,
                               tmp_path: Path) -> None:
    out = tmp_path / "again"
    prepare("cifar10", cifar10_archive, out)
    prepare("cifar10", cifar10_archive, out)  # replaces its own earlier output
    for name in _files(prepared_cifar10):
        assert (out / name).read_bytes() == (prepared_cifar10 / name).read_bytes(), name
    assert _files(tmp_path) == ["again"]  # no temporary folders left


def test_prepare_refuses_to_replace_foreign_folder(cifar10_archive: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(SdnetError, match="refusing"):
        prepare("cifar10", cifar10_archive, tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_val_size_zero_and_split_seed(cifar10_archive: Path, tmp_path: Path) -> None:
    prepare("cifar10", cifar10_archive, tmp_path / "none", val_size=0)
    assert not (tmp_path / "none" / "val.npz").exists()
    full = load_prepared(tmp_path / "none")
    assert full.val is None and len(full.train[1]) == 600

    def split(seed: int, name: str) -> tuple:
        prepare("cifar10", cifar10_archive, tmp_path / name, val_size=100, split_seed=seed)
        data = load_prepared(tmp_path / name)
        return data.train, data.val

    (train_a, val_a), (_, val_b), (_, val_c) = split(0, "a"), split(0, "b"), split(1, "c")
    np.testing.assert_array_equal(val_a[0], val_b[0])
    assert not np.array_equal(val_a[0], val_c[0])
    # train + val is exactly the original training set.
    rows = np.concatenate([train_a[0], val_a[0]]).reshape(600, -1)
    assert len(val_a[1]) == 100 and len(train_a[1]) == 500
    assert sorted(map(bytes, rows)) == sorted(map(bytes, full.train[0].reshape(600, -1)))
    with pytest.raises(SdnetError, match="val_size"):
        prepare("cifar10", cifar10_archive, tmp_path / "d", val_size=600)


def test_image_size_is_the_data_sets(prepared_cifar10: Path, tmp_path: Path) -> None:
    """meta.json records it; arrays of another size, or a meta.json claiming one, are refused."""
    from sdnet.data.prepared import check_split

    assert json.loads((prepared_cifar10 / "meta.json").read_text())["image_size"] == 32
    with pytest.raises(SdnetError, match=r"x\.npz: images must be uint8 \(N, 64, 64, 3\), got "
                                         r"uint8 \(2, 32, 32, 3\)"):
        check_split(np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2, np.int64), "x.npz", 10, 64)
    folder = tmp_path / "data"
    folder.mkdir()
    for name in _files(prepared_cifar10):
        (folder / name).write_bytes((prepared_cifar10 / name).read_bytes())
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "image_size": 64}))
    with pytest.raises(SdnetError, match="image_size 64, but cifar10 images are 32x32"):
        load_prepared(folder)
    del meta["image_size"]  # a folder prepared before meta.json recorded it
    (folder / "meta.json").write_text(json.dumps(meta))
    assert load_prepared(folder).train[0].shape[1:] == (32, 32, 3)


def test_load_prepared_errors(prepared_cifar10: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="sdnet data prepare"):
        load_prepared(tmp_path / "missing")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "meta.json").write_bytes((prepared_cifar10 / "meta.json").read_bytes())
    with pytest.raises(SdnetError, match=r"train\.npz.*sdnet data prepare"):
        load_prepared(partial)


# --- DeviceLoader ---------------------------------------------------------------------------

def _data(n: int = 50, seed: int = 0, size: tuple[int, int] = (32, 32)
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 256, (n, *size, 3), dtype=np.uint8),  # 1..255: padding shows as 0
            rng.integers(0, 10, n))


def _loader(images: np.ndarray, labels: np.ndarray, **kw: object) -> DeviceLoader:
    args = {"batch_size": 16, "device": "cpu", "mean": MEAN, "std": STD, "augment": True,
            "shuffle": True, "seed": 7, **kw}
    return DeviceLoader(images, labels, **args)


def _epoch(loader: DeviceLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.batches(epoch))


def _raw(x: torch.Tensor) -> np.ndarray:
    """Undo normalisation: back to raw 0-255 pixels (NCHW)."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return torch.round((x * std + mean) * 255).to(torch.int64).numpy()


def test_loader_shapes_and_last_partial_batch() -> None:
    images, labels = _data(50)
    loader = _loader(images, labels)
    batches = _epoch(loader, 0)
    assert len(loader) == len(batches) == 4
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert loader.images.dtype == torch.uint8 and loader.images.shape == (50, 3, 32, 32)
    cl = _loader(images, labels, channels_last=True)
    assert next(cl.batches(0))[0].is_contiguous(memory_format=torch.channels_last)


def test_loader_is_deterministic_per_seed_and_epoch() -> None:
    images, labels = _data()
    a, b = _epoch(_loader(images, labels), 3), _epoch(_loader(images, labels), 3)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    other = _epoch(_loader(images, labels), 4)
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in other]))
    reseeded = _epoch(_loader(images, labels, seed=8), 3)
    assert not torch.equal(a[0][0], reseeded[0][0])
    # Every image is seen exactly once per epoch.
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(labels.tolist())


def test_no_augment_no_shuffle_is_plain_normalisation() -> None:
    images, labels = _data()
    loader = _loader(images, labels, augment=False, shuffle=False)
    x = torch.cat([x for x, _ in loader.batches(5)])
    y = torch.cat([y for _, y in loader.batches(5)])
    expected = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
                - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert y.tolist() == labels.tolist()


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (40, 24)], ids=["32", "64", "40x24"])
def test_crop_flip_matches_slices_of_zero_padded_image(size: tuple[int, int]) -> None:
    """Any H x W (Tiny ImageNet's 64x64, and non-square) keeps its size."""
    h, w = size
    images = torch.from_numpy(_data(4, size=size)[0]).permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    dy, dx = torch.tensor([0, 8, 3, 4]), torch.tensor([8, 0, 5, 4])
    flip = torch.tensor([False, True, True, False])
    out = crop_flip(images, dy, dx, flip)
    assert out.shape == (4, 3, h, w)
    for i in range(4):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    assert torch.equal(out[3], images[3])  # centre crop, no flip: unchanged
    assert (out[0, :, :4] == 0).all()  # dy=0: the top 4 rows are raw-pixel zeros
    assert (out[1, :, :, -4:] == 0).all()  # dx=0, flipped: the right 4 columns are zeros


@pytest.mark.parametrize("size", [32, 64])
def test_augmented_batches_are_crops_and_flips_of_their_images(size: int) -> None:
    """Independent of the implementation: each output is one of the 162 pad-crop-flip variants
    of its source image (pad 4, crop back to size x size, flip), and across an epoch offsets
    and flips vary."""
    images, labels = _data(48, size=(size, size))
    labels = np.arange(48)  # labels identify the source image
    padded = np.pad(images.transpose(0, 3, 1, 2), ((0, 0), (0, 0), (4, 4), (4, 4)))
    variants = {(dy, dx, f): padded[:, :, dy:dy + size, dx:dx + size][..., ::-1 if f else 1]
                for dy in range(9) for dx in range(9) for f in (0, 1)}
    seen = set()
    for x, y in _loader(images, labels).batches(0):
        assert x.shape[1:] == (3, size, size)
        for raw, k in zip(_raw(x), y.tolist()):
            match = [key for key, crops in variants.items() if np.array_equal(raw, crops[k])]
            assert match, f"image {k} is no crop/flip of its source"
            seen.add(match[0])
    assert len({m[2] for m in seen}) == 2 and len({m[:2] for m in seen}) > 10


# --- damaged prepared folders (issue 12) ----------------------------------------------------

@pytest.mark.parametrize("cut", ["half", "header", "tail"])
def test_truncated_npz_is_one_line(prepared_cifar10: Path, tmp_path: Path, cut: str,
                                   capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in _files(prepared_cifar10):
        (folder / name).write_bytes((prepared_cifar10 / name).read_bytes())
    data = (folder / "train.npz").read_bytes()
    keep = {"half": len(data) // 2, "header": 100, "tail": len(data) - 30}[cut]
    (folder / "train.npz").write_bytes(data[:keep])
    with pytest.raises(SdnetError) as err:
        load_prepared(folder)
    message = str(err.value)
    assert str(folder / "train.npz") in message and "\n" not in message
    assert "sdnet data prepare" in message and "prepare_dataset" in message
    argv = ["train", "--data", str(folder), "--dataset", "cifar10", "--depth", "8",
            "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdnet: error:") and "train.npz" in lines[0]


def test_npz_missing_an_array_is_one_line(prepared_cifar10: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in _files(prepared_cifar10):
        (folder / name).write_bytes((prepared_cifar10 / name).read_bytes())
    np.savez(folder / "test.npz", images=np.zeros((200, 32, 32, 3), np.uint8))  # no labels
    with pytest.raises(SdnetError, match=r"test\.npz: unreadable.*labels.*sdnet data prepare"):
        load_prepared(folder)


def test_download_prepare_fake_import_no_torch(tmp_path: Path) -> None:
    """`sdnet data download|prepare|fake` stay light: none of them imports torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sdnet import cli\n"
        f"root = {str(tmp_path)!r}\n"
        "for fmt, out in (('cifar100', root + '/c.tgz'), ('svhn', root + '/svhn')):\n"
        "    assert cli.main(['data', 'fake', '--format', fmt, '--per-class', '12', '--out', out]) == 0\n"
        "assert cli.main(['data', 'download', '--dataset', 'cifar100', '--url', root + '/c.tgz',\n"
        "                 '--md5', 'none', '--out', root + '/raw']) == 0\n"
        "for f in ('train_32x32.mat', 'test_32x32.mat', 'extra_32x32.mat'):\n"
        "    assert cli.main(['data', 'download', '--dataset', 'svhn', '--file', f, '--url',\n"
        "                     root + '/svhn', '--md5', 'none', '--out', root + '/raw/svhn']) == 0\n"
        "assert cli.main(['data', 'prepare', '--dataset', 'cifar100', '--archive',\n"
        "                 root + '/raw/cifar-100-python.tar.gz', '--out', root + '/p100']) == 0\n"
        "assert cli.main(['data', 'prepare', '--dataset', 'svhn', '--archive', root + '/raw/svhn',\n"
        "                 '--val-per-class-train', '2', '--val-per-class-extra', '1',\n"
        "                 '--out', root + '/psvhn']) == 0\n"
        "assert 'torch' not in sys.modules, 'sdnet data imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "psvhn" / "meta.json").is_file()
