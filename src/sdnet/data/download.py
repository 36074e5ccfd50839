"""Fetch one official file (https, file:// or a plain path), verify its md5, move it into place.

Each file of a data set is fetched on its own (SVHN's three .mat files: a failed 1.3 GB download
of `extra` refetches only that one). The file is written under a temporary name in the
destination folder and only renamed to its final name once verified, so a wrong or truncated
download never looks finished.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from sdnet.data.registry import check_url, get_dataset
from sdnet.errors import SdnetError

log = logging.getLogger(__name__)
SKIP_MD5 = "none"


def _local_path(source: str) -> Path | None:
    """The file behind a plain path or a file:// URL; None for a remote (http/https) URL."""
    check_url(source)
    parts = urllib.parse.urlsplit(source)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SdnetError(f"cannot fetch {source}: file:// URLs must name a local file")
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    return Path(source).expanduser()


def _fetch(source: str, tmp: Path) -> None:
    """Copy a local file (torchvision's download_url cannot read file:// URLs in 0.29: its
    progress bar wants a Content-Length), or download a remote URL with torchvision's helper."""
    try:
        local = _local_path(source)
        if local is not None:
            shutil.copyfile(local, tmp)
            return
        from torchvision.datasets.utils import download_url  # imports torch: only when fetching

        download_url(source, str(tmp.parent), filename=tmp.name, md5=None)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise SdnetError(f"could not fetch {source}: {err}") from err


def _check_complete(path: Path, name: str) -> None:
    """Without an md5, at least refuse an archive cut short: a gzip stream that ends early or
    is corrupt, a zip without its central directory (written last)."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    try:
        if magic[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 22):
                    pass
        elif magic == b"PK\x03\x04":
            zipfile.ZipFile(path).close()
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as err:
        raise SdnetError(f"{name}: truncated or corrupt archive ({err}); it was not kept") from err


def md5_of(path: Path) -> str:
    """hashlib rather than torchvision's calculate_md5 (the same loop): importing torchvision
    pulls in torch and takes seconds, which every download/prepare would pay."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, md5: str, name: str | None = None) -> str:
    """Return the actual md5; SdnetError naming the file (`name`, default `path`), the expected
    and the actual md5 on a mismatch. md5 "none" only checks that a .gz stream is complete."""
    name = name or str(path)
    actual = md5_of(path)
    if md5.lower() == SKIP_MD5:
        log.warning("md5 check skipped for %s (actual md5 %s)", name, actual)
        _check_complete(path, name)
    elif actual != md5.lower():
        raise SdnetError(f"{name}: md5 mismatch (expected {md5.lower()}, got {actual}); the "
                         "file is wrong or truncated and was not kept")
    return actual


def _already_there(final: Path, md5: str) -> bool:
    if not final.is_file():
        return False
    if md5.lower() == SKIP_MD5 or md5_of(final) == md5.lower():
        return True
    log.warning("%s exists but does not match md5 %s; fetching it again", final, md5)
    return False


def _link_user_file(where: str, source: str, url: str | None, final: Path, md5: str) -> Path:
    """A file the user brings (ImageNet's 150 GB): checked where it lies and linked into
    place (never copied, never modified); one line saying where to get it if it is missing."""
    local = _local_path(source)
    if url is None or local is None:
        raise SdnetError(f"{final.name}: {where}")
    if not local.is_file():
        raise SdnetError(f"{local} not found. {where}")
    verify(local, md5, name=str(local))
    tmp = final.with_name(f".{final.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(local.resolve())
    os.replace(tmp, final)
    return final


def download(dataset: str, out_dir: Path | str, url: str | None = None,
             md5: str | None = None, file: str | None = None) -> Path:
    """Put the verified file `file` of `dataset` into `out_dir` under its official name.

    `file` defaults to the archive of a single-archive data set; SVHN needs it (one of its three
    .mat files), and its `url` is the folder holding them (the file name is appended). `md5`
    defaults to the official md5 of that file ("none" skips the check).
    """
    ds = get_dataset(dataset)
    official = ds.file(file)
    name = official.name
    source = ds.file_url(name, url)
    md5 = md5 or official.md5
    if md5.lower() != SKIP_MD5 and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        # Before fetching: a typo must not cost a 1.3 GB download to find out.
        raise SdnetError(f"--md5 {md5!r} for {name} is not an md5 (32 hex digits) or 'none'")
    out_dir = Path(out_dir)
    final = out_dir / name
    if _already_there(final, md5):
        return final
    out_dir.mkdir(parents=True, exist_ok=True)
    if ds.user_supplied:
        return _link_user_file(ds.user_supplied, source, url, final, md5)
    # A fresh temporary folder beside the final file: torchvision's download_url skips files that
    # already exist, and the rename into place stays on one file system.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=out_dir))
    try:
        tmp = tmp_dir / name
        _fetch(source, tmp)
        verify(tmp, md5, name=f"{final} (from {source})")
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final
