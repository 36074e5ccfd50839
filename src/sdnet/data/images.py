"""Image files <-> uint8 RGB arrays, for data sets shipped as one file per image (CINIC-10's
PNGs, Tiny ImageNet's JPEGs).

Decoding runs in a process pool while the archive is still being read: members arrive in
chunks, a pool starts once a first full chunk shows the archive is big enough, and at most two
chunks per worker are in flight. Greyscale, palette and CMYK images are converted to RGB; an
image of the wrong size or one that does not decode (a truncated JPEG, say) is one SdnetError
line naming the member.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdnet.data.common import process_pool
from sdnet.errors import SdnetError

DECODE_CHUNK = 1000  # images per task: small enough to overlap reading and decoding
Member = tuple[str, bytes]  # (name inside the archive, the file's bytes)


def decode_chunk(chunk: list[Member], source: str, fmt: str, size: int) -> np.ndarray:
    """uint8 (N, size, size, 3) RGB of (member name, bytes) pairs in format `fmt` ("PNG",
    "JPEG") from archive `source` (runs in the worker processes)."""
    out = np.empty((len(chunk), size, size, 3), np.uint8)
    for i, (name, data) in enumerate(chunk):
        try:
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                if im.size != (size, size):
                    raise SdnetError(f"{source}:{name}: image is {im.size[0]}x{im.size[1]}, "
                                     f"not {size}x{size}")
                out[i] = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            raise SdnetError(f"{source}:{name}: not a readable {fmt} ({err})") from err
    return out


def _chunks(members: Iterable[Member], size: int) -> Iterator[list[Member]]:
    chunk: list[Member] = []
    for member in members:
        chunk.append(member)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def decode_members(members: Iterable[Member], *, fmt: str, size: int, workers: int,
                   source: str = "") -> tuple[list[str], np.ndarray]:
    """(member names, uint8 (N, size, size, 3) images) in the order the members arrive."""
    names: list[str] = []
    parts: list[np.ndarray] = []
    pending: deque = deque()
    pool = None
    try:
        for chunk in _chunks(members, DECODE_CHUNK):
            names += [name for name, _ in chunk]
            if pool is None and workers > 1 and len(chunk) == DECODE_CHUNK:
                pool = process_pool(workers)
            if pool is None:
                parts.append(decode_chunk(chunk, source, fmt, size))
                continue
            pending.append(pool.submit(decode_chunk, chunk, source, fmt, size))
            while len(pending) > 2 * workers:
                parts.append(pending.popleft().result())
        parts += [future.result() for future in pending]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return names, np.concatenate(parts) if parts else np.empty((0, size, size, 3), np.uint8)


def encode(image: np.ndarray, fmt: str, mode: str = "RGB") -> bytes:
    """An RGB array as a PNG or JPEG file saved as RGB, greyscale ('L') or palette ('P', PNG
    only), the mix real image folders have (fakes use it)."""
    pil = Image.fromarray(image, "RGB")
    if mode == "L":
        pil = pil.convert("L")
    elif mode == "P":
        pil = pil.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    if fmt == "PNG":
        pil.save(buf, format="PNG", compress_level=1)
    else:
        pil.save(buf, format=fmt, quality=90)
    return buf.getvalue()


def encode_chunk(args: tuple[np.ndarray, list[str], str]) -> list[bytes]:
    """encode() over a chunk of images with their modes (a pool task)."""
    images, modes, fmt = args
    return [encode(img, fmt, mode) for img, mode in zip(images, modes)]
