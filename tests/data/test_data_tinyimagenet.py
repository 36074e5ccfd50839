"""Tiny ImageNet: the exact-format fake zip, torchvision's ImageFolder reading it as we do, prepare
(stratified validation split, test = the official val, meta.json), the CLI, and every bad input
giving one line while an earlier prepared folder survives."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdnet import cli, grid
from sdnet.data import download, fake_prepared, get_dataset, load_prepared, make_fake, prepare
from sdnet.data.download import md5_of
from sdnet.data.tinyimagenet import ROOT, fake_wnids
from sdnet.errors import SdnetError

ZIP = "tiny-imagenet-200.zip"
WNIDS = fake_wnids(200)
PER_CLASS = 4  # most tests: 4 train and 4 val images a class (800 + 800 JPEGs)


@pytest.fixture(scope="module")
def fake_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake("tinyimagenet", tmp_path_factory.mktemp("tin"), per_class=PER_CLASS)


@pytest.fixture(scope="module")
def prepared(fake_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tin_prepared") / "tinyimagenet"
    prepare("tinyimagenet", fake_zip, out, val_size=300, workers=1)
    return out


def _rewrite(src: Path, dst: Path, drop: str = "", replace: dict[str, bytes] | None = None
             ) -> Path:
    """A copy of a zip less the members starting with `drop`, with some members replaced."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if drop and info.filename.startswith(drop):
                continue
            zout.writestr(info, replace.get(info.filename, zin.read(info)))
    return dst


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --- the fake -------------------------------------------------------------------------------

def test_fake_has_the_real_layout(fake_zip: Path) -> None:
    assert fake_zip.name == ZIP
    with zipfile.ZipFile(fake_zip) as zf:
        names = set(zf.namelist())
        wnids_txt = zf.read(f"{ROOT}/wnids.txt").decode().split()
        words = dict(line.split("\t") for line in zf.read(f"{ROOT}/words.txt").decode()
                     .splitlines())
        annotations = [line.split("\t") for line in
                       zf.read(f"{ROOT}/val/val_annotations.txt").decode().splitlines()]
        grey = Image.open(io.BytesIO(zf.read(f"{ROOT}/train/{WNIDS[0]}/images/"
                                             f"{WNIDS[0]}_3.JPEG")))
        rgb = Image.open(io.BytesIO(zf.read(f"{ROOT}/val/images/val_0.JPEG")))
    assert sorted(wnids_txt) == WNIDS and wnids_txt != WNIDS  # listed in no particular order
    assert set(WNIDS) < set(words) and words[WNIDS[7]] == "fake class 007, fake synonym 007"
    for wnid in WNIDS:
        assert f"{ROOT}/train/{wnid}/{wnid}_boxes.txt" in names
        assert {f"{ROOT}/train/{wnid}/images/{wnid}_{i}.JPEG" for i in range(PER_CLASS)} <= names
    assert len(annotations) == 200 * PER_CLASS and all(len(a) == 6 for a in annotations)
    assert all(f"{ROOT}/val/images/{a[0]}" in names and a[1] in WNIDS for a in annotations)
    assert sum(n.startswith(f"{ROOT}/test/images/") and n.endswith(".JPEG") for n in names) == 10
    assert (grey.format, grey.mode, grey.size) == ("JPEG", "L", (64, 64))  # as some real ones
    assert (rgb.format, rgb.mode, rgb.size) == ("JPEG", "RGB", (64, 64))


def test_fake_is_byte_reproducible(fake_zip: Path, tmp_path: Path) -> None:
    assert make_fake("tinyimagenet", tmp_path / "a.zip", per_class=PER_CLASS).read_bytes() == \
        fake_zip.read_bytes()
    assert make_fake("tinyimagenet", tmp_path / "b.zip", per_class=PER_CLASS,
                     seed=1).read_bytes() != fake_zip.read_bytes()


def test_imagefolder_reads_the_fake_train_set_as_we_do(fake_zip: Path, tmp_path: Path) -> None:
    """torchvision's ImageFolder on the extracted train/: sorted-wnid classes, files sorted,
    greyscale converted to RGB; prepare (val_size 0) gives the same pixels and labels."""
    from torchvision.datasets import ImageFolder

    with zipfile.ZipFile(fake_zip) as zf:
        zf.extractall(tmp_path / "x")
    tv = ImageFolder(str(tmp_path / "x" / ROOT / "train"))
    assert tv.classes == WNIDS
    meta = prepare("tinyimagenet", fake_zip, tmp_path / "p", val_size=0, workers=1)
    ours = load_prepared(tmp_path / "p")
    assert ours.val is None and meta["wnids"] == tv.classes
    assert [label for _, label in tv.samples] == ours.train[1].tolist()
    for i in (0, 3, 457, len(tv) - 1):  # 3: a greyscale JPEG
        image, label = tv[i]
        np.testing.assert_array_equal(np.asarray(image), ours.train[0][i])
        assert label == ours.train[1][i]


# --- prepare --------------------------------------------------------------------------------

def test_prepare_splits_and_meta(prepared: Path, fake_zip: Path) -> None:
    data = load_prepared(prepared)
    meta = data.meta
    assert meta["counts"] == {"train": 500, "val": 300, "test": 800}
    assert meta["num_classes"] == 200 and meta["image_size"] == 64
    assert meta["classes"][:2] == ["fake class 000", "fake class 001"]  # words.txt's first name
    assert meta["wnids"] == WNIDS and meta["source_md5"] == md5_of(fake_zip)
    assert meta["val_size"] == 300 and meta["split_seed"] == 0
    for images, _ in (data.train, data.val, data.test):
        assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    # Stratified: 300 = 1 of every class + 1 more of 100 classes; each class keeps 2 or 3.
    assert sorted(set(np.bincount(data.val[1], minlength=200))) == [1, 2]
    assert np.bincount(np.concatenate([data.train[1], data.val[1]])).tolist() == [4] * 200
    # test = the official val, in file-name order, labelled by val_annotations.txt.
    with zipfile.ZipFile(fake_zip) as zf:
        rows = [line.split("\t") for line in
                zf.read(f"{ROOT}/val/val_annotations.txt").decode().splitlines()]
        first = min(rows)[0]
        pixels = np.asarray(Image.open(io.BytesIO(zf.read(f"{ROOT}/val/images/{first}")))
                            .convert("RGB"))
    labels = [WNIDS.index(wnid) for _, wnid, *_ in sorted(rows)]
    assert data.test[1].tolist() == labels
    np.testing.assert_array_equal(data.test[0][0], pixels)


def test_default_validation_is_a_tenth_of_each_class(fake_zip: Path, tmp_path: Path) -> None:
    """10,000 = 50 a class of the real 100,000 (the test set's size); here 80 of 800."""
    meta = prepare("tinyimagenet", fake_zip, tmp_path / "p", workers=1)
    assert meta["counts"] == {"train": 720, "val": 80, "test": 800}
    assert get_dataset("tinyimagenet").max_val_size == 99_800


def test_prepare_is_deterministic_and_seeded(fake_zip: Path, prepared: Path,
                                             tmp_path: Path) -> None:
    """Same bytes with the decoding pool (workers=2, small chunks) as without; another
    split_seed draws another validation set."""
    import importlib

    images = importlib.import_module("sdnet.data.images")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "DECODE_CHUNK", 128)
        prepare("tinyimagenet", fake_zip, tmp_path / "a", val_size=300, workers=2)
    for name in ("train.npz", "val.npz", "test.npz", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (prepared / name).read_bytes(), name
    prepare("tinyimagenet", fake_zip, tmp_path / "b", val_size=300, split_seed=1, workers=1)
    assert (tmp_path / "b" / "val.npz").read_bytes() != (prepared / "val.npz").read_bytes()
    assert (tmp_path / "b" / "test.npz").read_bytes() == (prepared / "test.npz").read_bytes()


def test_val_size_limits(fake_zip: Path, tmp_path: Path) -> None:
    with pytest.raises(SdnetError, match=r"val_size must be in 0\.\.600 \(every class keeps a "
                                         r"training image\)"):
        prepare("tinyimagenet", fake_zip, tmp_path / "p", val_size=601, workers=1)
    cfg = grid.load_config([Path(__file__).resolve().parents[2] / "config.yaml"])
    for entry, message in (({"val_size": 99_801}, "does not fit Tiny ImageNet: at most 99800"),
                           ({"fake": {"per_class": 4}, "val_size": 601}, "at most 600")):
        with pytest.raises(grid.ConfigError, match=message):
            grid.validate(grid.merge(cfg, {"datasets": {"tinyimagenet": entry}}))


def test_fake_prepared_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = fake_prepared("tinyimagenet", tmp_path / "fp", per_class=2, val_size=200)
    assert load_prepared(folder).meta["counts"] == {"train": 200, "val": 200, "test": 400}
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    assert cli.main(["data", "fake", "--format", "tinyimagenet", "--per-class", "2",
                     "--out", str(mirror)]) == 0
    archive = mirror / ZIP
    assert capsys.readouterr().out.strip() == str(archive)
    assert cli.main(["data", "download", "--dataset", "tinyimagenet", "--url", archive.as_uri(),
                     "--md5", md5_of(archive), "--out", str(tmp_path / "raw")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "raw" / ZIP)
    assert cli.main(["data", "prepare", "--dataset", "tinyimagenet", "--archive",
                     str(tmp_path / "raw"), "--val-size", "0", "--workers", "1",
                     "--out", str(tmp_path / "p")]) == 0
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["counts"] == {"train": 400, "test": 400} and meta["image_size"] == 64


# --- bad input: one line, the earlier prepared folder kept ----------------------------------

def _keeps(prepared: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in prepared.iterdir()}


def test_a_missing_class_folder_names_it_and_the_wnid(fake_zip: Path, prepared: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    before = _keeps(prepared)
    wnid = WNIDS[17]
    bad = _rewrite(fake_zip, tmp_path / ZIP, drop=f"{ROOT}/train/{wnid}/")
    argv = ["data", "prepare", "--dataset", "tinyimagenet", "--archive", str(bad), "--val-size",
            "300", "--workers", "1", "--out", str(prepared)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdnet: error:") and str(bad) in err[0]
    assert f"{ROOT}/train/{wnid}/images/" in err[0] and f"wnid {wnid}" in err[0]
    assert _keeps(prepared) == before


def test_a_truncated_jpeg_names_the_member(fake_zip: Path, prepared: Path,
                                           tmp_path: Path) -> None:
    before = _keeps(prepared)
    member = f"{ROOT}/train/{WNIDS[3]}/images/{WNIDS[3]}_1.JPEG"
    with zipfile.ZipFile(fake_zip) as zf:
        jpeg = zf.read(member)
    bad = _rewrite(fake_zip, tmp_path / ZIP, replace={member: jpeg[:len(jpeg) // 2]})
    with pytest.raises(SdnetError) as err:
        prepare("tinyimagenet", bad, prepared, val_size=300, workers=1)
    assert f"{bad}:{member}: not a readable JPEG" in _one_line(err)
    assert "truncated" in str(err.value)
    assert _keeps(prepared) == before


@pytest.mark.parametrize(("edit", "message"), [
    ("unknown-wnid", "val_annotations.txt line 1: wnid 'n00000000' of val_0.JPEG is not a class"),
    ("no-words", f"words.txt: no name for wnid {WNIDS[0]}"),
    ("few-wnids", "wnids.txt: 199 lines, 199 distinct wnids; expected 200 classes"),
    ("no-annotations", f"no {ROOT}/val/val_annotations.txt; is it {ZIP}?"),
    ("not-a-class", f"{ROOT}/train/n99999999/ is not a class of {ROOT}/wnids.txt"),
    ("unlabelled", f"{ROOT}/val/images/val_9999.JPEG has no line in"),
], ids=lambda v: v if len(v) < 20 else "")
def test_inconsistent_zips_are_one_line(fake_zip: Path, prepared: Path, tmp_path: Path,
                                        edit: str, message: str) -> None:
    before = _keeps(prepared)
    with zipfile.ZipFile(fake_zip) as zf:
        annotations = zf.read(f"{ROOT}/val/val_annotations.txt").decode()
        wnids = zf.read(f"{ROOT}/wnids.txt").decode().splitlines()
        words = zf.read(f"{ROOT}/words.txt").decode().splitlines()
        some_jpeg = zf.read(f"{ROOT}/val/images/val_0.JPEG")
    drop, replace = "", {}
    if edit == "unknown-wnid":
        first, rest = annotations.split("\n", 1)
        fields = first.split("\t")
        replace = {f"{ROOT}/val/val_annotations.txt":
                   "\t".join([fields[0], "n00000000", *fields[2:]]).encode() + b"\n"
                   + rest.encode()}
    elif edit == "no-words":
        replace = {f"{ROOT}/words.txt": "\n".join(w for w in words if not w.startswith(WNIDS[0]))
                   .encode()}
    elif edit == "few-wnids":
        replace = {f"{ROOT}/wnids.txt": "\n".join(wnids[1:]).encode()}
    elif edit == "no-annotations":
        drop = f"{ROOT}/val/val_annotations.txt"
    bad = _rewrite(fake_zip, tmp_path / ZIP, drop=drop, replace=replace)
    if edit in ("not-a-class", "unlabelled"):
        extra = {"not-a-class": f"{ROOT}/train/n99999999/images/n99999999_0.JPEG",
                 "unlabelled": f"{ROOT}/val/images/val_9999.JPEG"}[edit]
        with zipfile.ZipFile(bad, "a") as zf:
            zf.writestr(extra, some_jpeg)
    with pytest.raises(SdnetError) as err:
        prepare("tinyimagenet", bad, prepared, val_size=300, workers=1)
    assert message in _one_line(err) and str(bad) in str(err.value)
    assert _keeps(prepared) == before


def test_not_a_zip_and_a_wrong_md5_name_the_file(fake_zip: Path, prepared: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    before = _keeps(prepared)
    html = tmp_path / ZIP
    html.write_bytes(b"<html><body>404 Not Found</body></html>")
    with pytest.raises(SdnetError) as err:
        prepare("tinyimagenet", html, prepared, workers=1)
    assert f"{html}: not a readable zip archive" in _one_line(err) and ZIP in str(err.value)
    wrong = "0" * 32
    argv = ["data", "download", "--dataset", "tinyimagenet", "--url", str(fake_zip), "--md5",
            wrong, "--out", str(tmp_path / "raw")]
    assert cli.main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()
    assert len(line) == 1 and ZIP in line[0] and wrong in line[0] and md5_of(fake_zip) in line[0]
    with pytest.raises(SdnetError, match="90528d7ca1a48142e341f4ef8d21d0de"):  # the default md5
        download("tinyimagenet", tmp_path / "raw", url=str(fake_zip))
    cut = tmp_path / "cut.zip"
    cut.write_bytes(fake_zip.read_bytes()[:100_000])  # no central directory
    with pytest.raises(SdnetError, match="truncated or corrupt archive"):
        download("tinyimagenet", tmp_path / "raw", url=str(cut), md5="none")
    assert list((tmp_path / "raw").iterdir()) == []
    assert _keeps(prepared) == before
