"""A prepared split stored as JPEG bytes (ImageNet's train): `train.jpegs` + its index.

`train.jpegs` is every image's (re-encoded, baseline RGB) JPEG, concatenated; `train.npz` holds
the index: offsets, lengths, heights, widths and labels. `JpegImages` memory-maps the bytes, so
every rank of a run (and every run on a node) shares them through the page cache; it stands
where the other data sets have their uint8 image array (`Prepared.train[0]`), with a `shape`
giving the size the loader crops to. numpy only; decoding is `sdnet.data.jpeg_loader`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdnet.errors import SdnetError

JPEGS = "train.jpegs"
INDEX_FIELDS = ("offsets", "lengths", "heights", "widths", "labels")


@dataclass
class JpegImages:
    """N JPEGs in one memory-mapped byte array, and the crop size the loader makes of them."""

    data: np.ndarray     # uint8 memmap of train.jpegs
    offsets: np.ndarray  # int64 (N,)
    lengths: np.ndarray  # int64 (N,)
    heights: np.ndarray  # int32 (N,)
    widths: np.ndarray   # int32 (N,)
    size: int            # the loader's output is (size, size)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, size, size, 3): what the loader's batches are made of."""
        return (len(self), self.size, self.size, 3)

    def __getitem__(self, index: slice) -> JpegImages:
        """A subset (e.g. `--limit-train`), sharing the same bytes."""
        return JpegImages(self.data, self.offsets[index], self.lengths[index],
                          self.heights[index], self.widths[index], self.size)

    def jpeg(self, i: int) -> np.ndarray:
        """Image i's bytes (a view of the map)."""
        start = int(self.offsets[i])
        return self.data[start:start + int(self.lengths[i])]


def read_jpeg_split(data_dir: Path, size: int, num_classes: int, count: int
                    ) -> tuple[JpegImages, np.ndarray]:
    """(JpegImages, labels) of `data_dir`'s train.jpegs + train.npz, checked against meta.json's
    count and the class count; one line naming the file for anything inconsistent."""
    index_path, data_path = data_dir / "train.npz", data_dir / JPEGS
    hint = f"re-run `sdnet data prepare` (under Snakemake: delete {data_dir})"
    for path in (index_path, data_path):
        if not path.is_file():
            raise SdnetError(f"{path} not found; {hint}")
    try:
        with np.load(index_path, allow_pickle=False) as npz:
            fields = {name: npz[name] for name in INDEX_FIELDS}
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise SdnetError(f"{index_path}: unreadable JPEG index ({err}); {hint}") from err
    labels = fields.pop("labels").astype(np.int64)
    if len(labels) != count or any(len(v) != count for v in fields.values()):
        raise SdnetError(f"{index_path}: index of {len(labels)} images but meta.json says "
                         f"{count}; {hint}")
    size_on_disk = data_path.stat().st_size
    end = int((fields["offsets"] + fields["lengths"]).max()) if count else 0
    if end > size_on_disk:
        raise SdnetError(f"{data_path}: {size_on_disk} bytes, but the index reaches byte {end} "
                         f"(truncated?); {hint}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise SdnetError(f"{index_path}: labels must be in 0..{num_classes - 1}")
    data = (np.memmap(data_path, dtype=np.uint8, mode="r") if size_on_disk
            else np.zeros(0, np.uint8))
    return JpegImages(data, fields["offsets"].astype(np.int64), fields["lengths"].astype(np.int64),
                      fields["heights"].astype(np.int32), fields["widths"].astype(np.int32),
                      int(size)), labels
