"""ImageNet: the fake in the official layout, prepare (resumable), the JPEG loader, a tiny run."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from sdnet.data import download, imagenet, make_fake, prepare
from sdnet.data.download import md5_of
from sdnet.data.fake import fake_prepared
from sdnet.data.imagenet import DEVKIT, GROUND_TRUTH, META_MAT, TRAIN_TAR, VAL_TAR
from sdnet.data.jpeg_loader import JpegLoader, crop_boxes
from sdnet.data.prepared import load_prepared
from sdnet.errors import SdnetError


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake("imagenet", tmp_path_factory.mktemp("inet") / "files")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_prepared("imagenet", tmp_path_factory.mktemp("inet-prepared"))


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


# --- the fake: the official layout ---------------------------------------------------------------

def test_fake_has_the_official_layout(fake_dir: Path) -> None:
    train = _members(fake_dir / TRAIN_TAR)
    wnids = imagenet.fake_wnids(imagenet.FAKE_CLASSES)
    assert sorted(train) == [f"{w}.tar" for w in wnids]  # one inner tar per class
    inner = _members_bytes(train[f"{wnids[0]}.tar"])
    assert sorted(inner) == sorted(f"{wnids[0]}_{k}.JPEG" for k in range(1, 9))
    val = _members(fake_dir / VAL_TAR)
    assert sorted(val) == [f"ILSVRC2012_val_{j:08d}.JPEG" for j in range(1, 16)]  # flat
    devkit = _members(fake_dir / DEVKIT)
    assert {META_MAT, GROUND_TRUTH} <= set(devkit)
    # meta.mat by scipy: leaves' IDs are not in sorted-wnid order; non-leaves present.
    synsets = scipy.io.loadmat(io.BytesIO(devkit[META_MAT]), squeeze_me=True)["synsets"]
    leaves = [(int(r[0]), str(r[1])) for r in synsets if int(r[4]) == 0]
    assert len(leaves) == imagenet.FAKE_CLASSES < len(synsets)
    by_id = [w for _, w in sorted(leaves)]
    assert by_id != sorted(by_id)
    # The quirks: a PNG named .JPEG, CMYK JPEGs (train and val), greyscale ones.
    modes = {}
    for data in [*_all_train_images(train), *val.values()]:
        with Image.open(io.BytesIO(data)) as im:
            modes[(im.format, im.mode)] = modes.get((im.format, im.mode), 0) + 1
    assert modes[("PNG", "RGB")] == 1
    assert modes[("JPEG", "CMYK")] == 2
    assert modes[("JPEG", "L")] >= 2


def _members_bytes(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def _all_train_images(train: dict[str, bytes]) -> list[bytes]:
    return [d for inner in train.values() for d in _members_bytes(inner).values()]


def test_fake_is_byte_reproducible(fake_dir: Path, tmp_path: Path) -> None:
    again = make_fake("imagenet", tmp_path / "again")
    for name in (TRAIN_TAR, VAL_TAR, DEVKIT):
        assert (again / name).read_bytes() == (fake_dir / name).read_bytes()


# --- prepare ------------------------------------------------------------------------------------

def test_prepared_splits_and_labels(prepared: Path, fake_dir: Path) -> None:
    data = load_prepared(prepared)
    meta = data.meta
    assert meta["wnids"] == sorted(meta["wnids"]) and meta["num_classes"] == 5
    assert meta["counts"] == {"train": 35, "val": 5, "test": 15}
    jpegs, labels = data.train
    assert jpegs.shape == (35, 224, 224, 3)
    assert np.bincount(labels).tolist() == [7] * 5  # one of 8 per class held out
    assert data.val[0].shape == (5, 224, 224, 3) and sorted(data.val[1]) == list(range(5))
    # Test labels: the ground truth's IDs mapped through meta.mat to sorted-wnid positions.
    devkit = _members(fake_dir / DEVKIT)
    synsets = scipy.io.loadmat(io.BytesIO(devkit[META_MAT]), squeeze_me=True)["synsets"]
    wnid_of = {int(r[0]): str(r[1]) for r in synsets if int(r[4]) == 0}
    ids = [int(x) for x in devkit[GROUND_TRUTH].split()]
    expected = [meta["wnids"].index(wnid_of[i]) for i in ids]
    assert data.test[1].tolist() == expected
    assert data.test[0].dtype == np.uint8 and data.test[0].shape == (15, 224, 224, 3)
    # Every stored training image is a baseline RGB JPEG of the recorded size.
    for i in range(len(jpegs)):
        with Image.open(io.BytesIO(jpegs.jpeg(i).tobytes())) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert im.size == (jpegs.widths[i], jpegs.heights[i])


def test_test_view_is_resize_256_centre_crop_224(prepared: Path, fake_dir: Path) -> None:
    val = _members(fake_dir / VAL_TAR)
    data = load_prepared(prepared)
    with Image.open(io.BytesIO(val["ILSVRC2012_val_00000002.JPEG"])) as im:
        im = im.convert("RGB")
        w, h = im.size
        size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        im = im.resize(size, Image.Resampling.BICUBIC)
        left, top = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
        expected = np.asarray(im.crop((left, top, left + 224, top + 224)))
    assert np.array_equal(data.test[0][1], expected)


def test_max_side_shrinks_training_images(fake_dir: Path, tmp_path: Path) -> None:
    raw = _raw(fake_dir, tmp_path)
    meta = prepare("imagenet", raw, tmp_path / "out", val_size=0, max_side=64, workers=1)
    assert meta["max_side"] == 64 and "val" not in meta["counts"]
    jpegs, _ = load_prepared(tmp_path / "out").train
    assert max(jpegs.heights.max(), jpegs.widths.max()) == 64
    assert min(jpegs.heights.min(), jpegs.widths.min()) < 64


def _raw(fake_dir: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    for name in (TRAIN_TAR, VAL_TAR, DEVKIT):
        download("imagenet", raw, url=fake_dir.as_uri(), md5="none", file=name)
    return raw


def test_interrupted_prepare_resumes_per_class(fake_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               prepared: Path) -> None:
    raw = _raw(fake_dir, tmp_path)
    out = tmp_path / "imagenet"
    real = imagenet.class_members
    read: list[str] = []

    def failing(outer, archive, wnid, label):
        if label == 3:
            raise KeyboardInterrupt  # the process is stopped while reading class 3
        read.append(wnid)
        return real(outer, archive, wnid, label)

    monkeypatch.setattr(imagenet, "class_members", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare("imagenet", raw, out, val_size=5, workers=1)
    assert not out.exists()  # nothing that looks finished
    work = tmp_path / ".imagenet.partial"
    assert len(list((work / "train").glob("*.npz"))) >= 2  # classes 0 and 1 (2 may be pending)
    done_before = len(read)

    def counting(outer, archive, wnid, label):
        read.append(wnid)
        return real(outer, archive, wnid, label)

    monkeypatch.setattr(imagenet, "class_members", counting)
    prepare("imagenet", raw, out, val_size=5, workers=1)
    resumed = read[done_before:]
    assert imagenet.fake_wnids(5)[0] not in resumed and len(resumed) <= 3
    assert not work.exists()
    # The same bytes as an uninterrupted prepare (fake_prepared: val_size 5, split seed 0).
    for name in ("train.jpegs", "train.npz", "val.npz", "test.npz"):
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name


# --- bad input ----------------------------------------------------------------------------------

def test_wrong_md5_names_the_file_and_both_checksums(fake_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError) as err:
        download("imagenet", tmp_path, url=str(fake_dir), file=VAL_TAR)  # official md5
    message = str(err.value)
    assert VAL_TAR in message and "29b22e2961454d5413ddabcf34fc5622" in message
    assert md5_of(fake_dir / VAL_TAR) in message and "\n" not in message
    assert not (tmp_path / VAL_TAR).exists()


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match="image-net.org") as err:
        download("imagenet", tmp_path / "raw", file=TRAIN_TAR)  # no url: nothing to fetch
    assert "\n" not in str(err.value)
    with pytest.raises(SdnetError, match=f"{TRAIN_TAR} not found.*image-net.org"):
        download("imagenet", tmp_path / "raw", url=str(tmp_path), md5="none", file=TRAIN_TAR)


def _rewrite(src: Path, dst: Path, name: str, edit) -> Path:
    """A copy of the fake folder with file `name` rebuilt from its edited members."""
    shutil.copytree(src, dst)
    members = [(n, d) for n, d in _members(src / name).items()]
    members = edit(members)
    mode = "w:gz" if name.endswith(".gz") else "w"
    with tarfile.open(dst / name, mode) as tar:
        for n, d in members:
            info = tarfile.TarInfo(n)
            info.size = len(d)
            tar.addfile(info, io.BytesIO(d))
    return dst


@pytest.mark.parametrize("name,edit,pieces", [
    (DEVKIT, lambda ms: [(n, d) for n, d in ms if not n.endswith("meta.mat")],
     [DEVKIT, "no member", META_MAT]),
    (TRAIN_TAR, lambda ms: [(n, d) for n, d in ms if n != "n01455838.tar"],
     [TRAIN_TAR, "no member n01455838.tar"]),
    (VAL_TAR, lambda ms: [(n, d[:len(d) // 3] if n.endswith("00000004.JPEG") else d)
                          for n, d in ms],
     [VAL_TAR, "ILSVRC2012_val_00000004.JPEG", "not a readable"]),
])
def test_bad_member_is_one_line_naming_it(fake_dir: Path, tmp_path: Path, name: str, edit,
                                          pieces: list[str]) -> None:
    files = _rewrite(fake_dir, tmp_path / "files", name, edit)
    before = {p.name: md5_of(p) for p in files.iterdir()}
    raw = _raw(files, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "meta.json").write_text("{}")  # something prepared before
    with pytest.raises(SdnetError) as err:
        prepare("imagenet", raw, out, val_size=5, workers=1)
    message = str(err.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message
    assert (out / "meta.json").read_text() == "{}"  # nothing prepared before is lost
    assert {p.name: md5_of(p) for p in files.iterdir()} == before  # files never modified


# --- the loader ---------------------------------------------------------------------------------

def _loader(prepared: Path, **kw) -> JpegLoader:
    data = load_prepared(prepared)
    return JpegLoader(*data.train, batch_size=kw.pop("batch_size", 8), device="cpu",
                      mean=data.mean, std=data.std, **kw)


def test_loader_is_deterministic_and_resumes_by_index(prepared: Path) -> None:
    a, b = _loader(prepared, seed=3), _loader(prepared, seed=3)
    first = list(a.batches(1))
    assert len(first) == len(a) == 5 and first[-1][0].shape == (3, 3, 224, 224)
    again = list(b.batches(1))
    for (x, y), (x2, y2) in zip(first, again):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    resumed = list(b.batches(1, start_step=3))
    assert len(resumed) == 2
    for (x, y), (x2, y2) in zip(first[3:], resumed):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    other = list(a.batches(2))
    assert not torch.equal(other[0][1], first[0][1]) or not torch.equal(other[0][0], first[0][0])
    # Every image once per epoch.
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(a.labels_host.tolist())


def test_ranks_take_their_part_of_every_global_batch(prepared: Path) -> None:
    loader = _loader(prepared, seed=0)
    whole = list(loader.batches(0))
    parts = [list(loader.shard_batches(0, rank, 2)) for rank in range(2)]
    for step, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][step][1], parts[1][step][1]]), y)
        assert torch.allclose(torch.cat([parts[0][step][0], parts[1][step][0]]), x)


def test_crop_boxes_follow_fb_resnet_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    h = torch.randint(60, 500, (4000,))
    w = torch.randint(60, 500, (4000,))
    boxes = crop_boxes(h, w, gen)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    frac = bw * bh / (h * w)
    assert frac.min() >= 0.07 and frac.max() <= 1.0  # rounding aside, 8-100 % of the area
    ratio = bw / bh
    assert ratio.min() > 0.5 and ratio.max() < 2.0
    # A very thin image: no try fits, the fallback is the centred square of the shorter side.
    thin = crop_boxes(torch.tensor([10]), torch.tensor([400]), torch.Generator().manual_seed(1))
    fallback = crop_boxes(torch.tensor([10]), torch.tensor([400]), torch.Generator(), False)
    assert fallback.tolist() == [[195.0, 0.0, 205.0, 10.0]]
    assert (thin[0, 3] - thin[0, 1]) <= 10


def test_unaugmented_loader_is_the_centre_view(prepared: Path) -> None:
    loader = _loader(prepared, augment=False, shuffle=False, batch_size=4)
    x, _ = next(iter(loader.batches(0)))
    data = load_prepared(prepared)
    jpegs = data.train[0]
    with Image.open(io.BytesIO(jpegs.jpeg(0).tobytes())) as im:
        w, h = im.size
        side = min(w, h)
        left, top = round((w - side) / 2), round((h - side) / 2)
        ref = np.asarray(im.convert("RGB").crop((left, top, left + side, top + side))
                         .resize((224, 224), Image.Resampling.BILINEAR), np.float32) / 255
    mean, std = np.array(data.mean), np.array(data.std)
    pixels = x[0].permute(1, 2, 0).numpy() * std + mean
    assert np.abs(pixels - ref).mean() < 0.03  # roi_align vs PIL bilinear: close, not equal


def test_config_and_meta(prepared: Path) -> None:
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["train_format"] == "jpeg" and meta["jpeg_quality"] == 90
    assert meta["mean"] == [0.485, 0.456, 0.406]


def test_fused_colour_affine_equals_jitter_lighting_normalise() -> None:
    from sdnet.data.jpeg_loader import colour_affine, colour_jitter, lighting

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 20, 24, generator=gen, dtype=torch.float64)
    factors = 1 + torch.empty(6, 3, dtype=torch.float64).uniform_(-0.4, 0.4, generator=gen)
    order = torch.argsort(torch.rand(6, 3, generator=gen), dim=1)
    light = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 0.1
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)
    step_by_step = (lighting(colour_jitter(x, factors, order), light) - mean.view(1, 3, 1, 1)) \
        / std.view(1, 3, 1, 1)
    m, c = colour_affine(x.mean(dim=(2, 3)), factors, order, light, mean, std)
    fused = torch.einsum("nij,njhw->nihw", m, x) + c[:, :, None, None]
    assert torch.allclose(fused, step_by_step, atol=1e-12)
    assert len({tuple(o) for o in order.tolist()}) > 1  # several orders exercised


def test_validation_tar_in_any_order_gives_the_same_test_split(fake_dir: Path, tmp_path: Path,
                                                               prepared: Path) -> None:
    files = _rewrite(fake_dir, tmp_path / "files", VAL_TAR, lambda ms: ms[::-1])
    assert next(iter(_members(files / VAL_TAR))).endswith("00000015.JPEG")
    prepare("imagenet", _raw(files, tmp_path), tmp_path / "out", val_size=5, workers=1)
    with np.load(tmp_path / "out/test.npz") as a, np.load(prepared / "test.npz") as b:
        assert np.array_equal(a["images"], b["images"])
        assert np.array_equal(a["labels"], b["labels"])
