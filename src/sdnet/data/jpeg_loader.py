"""Training batches decoded from JPEG bytes on the device: ImageNet's loader.

The split is `sdnet.data.jpegs.JpegImages` (one memory-mapped file of JPEGs and its index). Per
(seed, epoch) a CPU generator draws everything up front (`EpochPlan`): the permutation, each
image's fb.resnet.torch crop box (area 8-100 %, aspect 3/4-4/3, 10 tries, else Scale 224 +
CenterCrop 224), the flip, the colour-jitter factors (brightness, contrast, saturation, 0.4) and
their order, and the PCA-lighting alpha (std 0.1). Per step the batch's bytes are sliced from the
map and decoded in one batched call on the device (`torchvision.io.decode_jpeg(list,
device=...)`: nvJPEG on CUDA, libjpeg-turbo on the CPU), then cropped and resized to 224
(bilinear, antialiased: on CUDA one `roi_align` over the zero-padded batch with adaptive
sampling, on the CPU torch's vectorised uint8 resize per image), and jittered, lit and
normalised in ONE pass: all three are affine in the pixel, so they compose into a per-image 3x3
matrix and offset (`colour_affine`; `colour_jitter` and `lighting` are the step-by-step
definitions it is tested against); then flipped. On CUDA the next
batch is prepared on a side stream while the model runs on the current one.

Resume is index arithmetic: `batches(epoch, start_step=s)` yields exactly the batches s, s+1, ...
of the uninterrupted epoch (the plan depends on (seed, epoch) only), so nothing goes into the
checkpoint. Several ranks take their contiguous part of every global batch (`shard_batches`), as
`sdnet.distributed.shards` does for the array loader. Decoders differ: nvJPEG and libjpeg-turbo
may round IDCT outputs differently (values off by one or two), so batches are bit-identical
across runs on one device kind, not between a GPU and a CPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sdnet.data.jpegs import JpegImages
from sdnet.data.loader import epoch_seed, part

CROP = 224
TRIES = 10
AREA = (0.08, 1.0)
ASPECT = (3 / 4, 4 / 3)
JITTER = 0.4  # brightness, contrast, saturation
LIGHTING_STD = 0.1
EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = ((-0.5675, 0.7192, 0.4009),
          (-0.5808, -0.0045, -0.8140),
          (-0.5836, -0.6948, 0.4203))
GREY = (0.299, 0.587, 0.114)  # fb.resnet.torch's grayscale weights


@dataclass
class EpochPlan:
    """Every random choice of one epoch, by position in the epoch's order (CPU tensors)."""

    order: torch.Tensor     # int64 (n,): image index at each position
    boxes: torch.Tensor     # float32 (n, 4): x1, y1, x2, y2 of the crop (pixel edges)
    flip: torch.Tensor      # bool (n,)
    jitter: torch.Tensor    # float32 (n, 3): brightness, contrast, saturation factors
    jitter_order: torch.Tensor  # int64 (n, 3): which of the three is applied first, second...
    lighting: torch.Tensor  # float32 (n, 3): the PCA alpha


def crop_boxes(heights: torch.Tensor, widths: torch.Tensor, gen: torch.Generator,
               augment: bool = True) -> torch.Tensor:
    """fb.resnet.torch's RandomSizedCrop boxes (x1, y1, x2, y2) for images of these sizes.

    For each of 10 tries: target area U(0.08, 1) of the image, aspect U(3/4, 4/3), w and h
    rounded, swapped with probability 1/2; the first try that fits wins, placed uniformly. No
    try fits: Scale(224) + CenterCrop(224), i.e. the centred square of the shorter side. All
    draws happen whether used or not, so the plan's stream does not depend on the sizes.
    """
    n = len(heights)
    h = heights.to(torch.float64)[:, None]
    w = widths.to(torch.float64)[:, None]
    area = torch.empty(n, TRIES, dtype=torch.float64).uniform_(*AREA, generator=gen) * h * w
    aspect = torch.empty(n, TRIES, dtype=torch.float64).uniform_(*ASPECT, generator=gen)
    swap = torch.rand(n, TRIES, generator=gen, dtype=torch.float64) < 0.5
    place = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    cw = torch.round(torch.sqrt(area * aspect))
    ch = torch.round(torch.sqrt(area / aspect))
    cw, ch = torch.where(swap, ch, cw), torch.where(swap, cw, ch)
    fits = (ch <= h) & (cw <= w) & (ch >= 1) & (cw >= 1)
    if not augment:
        fits = torch.zeros_like(fits)
    first = torch.argmax(fits.to(torch.int8), dim=1)  # first True (0 if none)
    found = fits.any(dim=1)
    rows = torch.arange(n)
    cw, ch = cw[rows, first], ch[rows, first]
    h, w = h[:, 0], w[:, 0]
    x1 = torch.floor(place[:, 0] * (w - cw + 1))
    y1 = torch.floor(place[:, 1] * (h - ch + 1))
    side = torch.minimum(h, w)  # the fallback: centred square (Scale + CenterCrop)
    fx1, fy1 = torch.round((w - side) / 2), torch.round((h - side) / 2)
    x1 = torch.where(found, x1, fx1)
    y1 = torch.where(found, y1, fy1)
    cw = torch.where(found, cw, side)
    ch = torch.where(found, ch, side)
    return torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1).to(torch.float32)


def decode(jpegs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Batched decode to uint8 RGB (3, H, W) tensors on `device` (nvJPEG on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 deprecates it in favour of torchcodec
        warnings.simplefilter("ignore")
        out = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    return list(out)


def colour_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Brightness (0), contrast (1), saturation (2) with per-image factors, in each image's own
    order (fb.resnet.torch's RandomOrder). Each op is a blend with a per-image alpha, so one
    step of the order is x <- A x + B grey(x) + C mean(grey(x)), with (A, B, C) = (a, 0, 0) for
    brightness, (a, 0, 1 - a) for contrast and (a, 1 - a, 0) for saturation: three fused
    passes over the batch instead of nine."""
    grey_w = torch.tensor(GREY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    factors = factors.to(x.dtype)
    for step in range(3):
        op = order[:, step]
        a = factors.gather(1, op[:, None])[:, 0]
        b = torch.where(op == 2, 1 - a, torch.zeros_like(a)).view(-1, 1, 1, 1)
        c = torch.where(op == 1, 1 - a, torch.zeros_like(a)).view(-1, 1, 1, 1)
        grey = (x * grey_w).sum(1, keepdim=True)
        shift = grey * b + grey.mean(dim=(2, 3), keepdim=True) * c
        x = torch.addcmul(shift, x, a.view(-1, 1, 1, 1))
    return x


def lighting(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """AlexNet's PCA lighting as fb.resnet.torch adds it: rgb = eigvec @ (alpha * eigval)."""
    eigval = torch.tensor(EIGVAL, dtype=x.dtype, device=x.device)
    eigvec = torch.tensor(EIGVEC, dtype=x.dtype, device=x.device)
    rgb = (alpha * eigval) @ eigvec.T  # (n, 3)
    return x + rgb.view(-1, 3, 1, 1)


def colour_affine(mu: torch.Tensor, factors: torch.Tensor, order: torch.Tensor,
                  light: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(M (n, 3, 3), c (n, 3)) with normalise(lighting(colour_jitter(x))) = M x + c per pixel.

    Every step is affine in the pixel: brightness a x; saturation a x + (1 - a) 1 w'x; contrast
    a x + (1 - a) 1 mean(w'x), whose mean is w'(M mu + c) for the image's mean colour mu (a mean
    of an affine map is the map of the mean); lighting adds eigvec (alpha * eigval); normalising
    is (x - mean) / std. So the whole chain is composed on (n, 3, 3) matrices and applied to the
    batch in one pass (`colour_jitter` and `lighting` are the step-by-step definitions)."""
    n, dt, dev = len(mu), mu.dtype, mu.device
    w = torch.tensor(GREY, dtype=dt, device=dev)
    eye = torch.eye(3, dtype=dt, device=dev).expand(n, 3, 3)
    ones_w = torch.ones(3, 1, dtype=dt, device=dev) @ w[None]  # 1 w'
    m = eye.clone()
    c = torch.zeros(n, 3, dtype=dt, device=dev)
    factors = factors.to(dt)
    for step in range(3):
        op = order[:, step]
        a = factors.gather(1, op[:, None])[:, 0]
        a3 = a.view(n, 1, 1)
        sat = a3 * eye + (1 - a3) * ones_w
        grey_mean = ((m @ mu[:, :, None])[:, :, 0] + c) @ w  # (n,)
        m_new = torch.where((op == 2).view(n, 1, 1), sat @ m, a3 * m)
        c_new = torch.where((op == 2)[:, None], (sat @ c[:, :, None])[:, :, 0], a[:, None] * c)
        c_new = c_new + torch.where(op == 1, (1 - a) * grey_mean, torch.zeros_like(a))[:, None]
        m, c = m_new, c_new
    eigval = torch.tensor(EIGVAL, dtype=dt, device=dev)
    eigvec = torch.tensor(EIGVEC, dtype=dt, device=dev)
    c = c + (light.to(dt) * eigval) @ eigvec.T
    inv = 1 / std.to(dt).view(1, 3)
    return m * inv[:, :, None], (c - mean.to(dt).view(1, 3)) * inv


class JpegLoader:
    """The training split as JPEG bytes; `batches(epoch)` yields normalised float32 NCHW
    batches of CROP x CROP on the device, with the `DeviceLoader` interface."""

    def __init__(self, images: JpegImages, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, device: str | torch.device, mean: Sequence[float],
                 std: Sequence[float], augment: bool = True, shuffle: bool = True,
                 seed: int = 0, channels_last: bool = False, size: int = CROP) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.labels_host = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.labels_host) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.labels_host)} labels")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.channels_last = bool(channels_last)
        self.size = int(size)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._heights = torch.as_tensor(np.asarray(images.heights), dtype=torch.int64)
        self._widths = torch.as_tensor(np.asarray(images.widths), dtype=torch.int64)

    @property
    def num_samples(self) -> int:
        return len(self.images)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    # --- the plan ---------------------------------------------------------------------------

    def plan(self, epoch: int) -> EpochPlan:
        """Every draw of the epoch from one CPU generator seeded by (seed, epoch) only."""
        n = self.num_samples
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        boxes = crop_boxes(self._heights[order], self._widths[order], gen, self.augment)
        flip = torch.rand(n, generator=gen) < 0.5
        jitter = 1 + torch.empty(n, 3).uniform_(-JITTER, JITTER, generator=gen)
        jitter_order = torch.argsort(torch.rand(n, 3, generator=gen), dim=1)
        light = torch.randn(n, 3, generator=gen) * LIGHTING_STD
        if not self.augment:
            flip = torch.zeros_like(flip)
            jitter = torch.ones_like(jitter)
            light = torch.zeros_like(light)
        return EpochPlan(order, boxes, flip, jitter, jitter_order, light)

    # --- one batch --------------------------------------------------------------------------

    def _bytes(self, indices: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(np.array(self.images.jpeg(int(i)))) for i in indices]

    def make_batch(self, plan: EpochPlan, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions [lo, hi) of the epoch: decoded, cropped, resized, jittered, lit,
        normalised and flipped on the device."""
        idx = plan.order[lo:hi]
        decoded = decode(self._bytes(idx), self.device)
        on_cpu = self.device.type != "cuda"
        flips = plan.flip[lo:hi]
        # float 0-255, (n, 3, size, size); the CPU flips each small crop before resizing.
        x = self._crop_resize(decoded, plan.boxes[lo:hi], flips if on_cpu else None)
        n = len(decoded)
        if self.augment:
            mu = x.mean(dim=(2, 3)) / 255.0
            m, c = colour_affine(mu, plan.jitter[lo:hi].to(self.device),
                                 plan.jitter_order[lo:hi].to(self.device),
                                 plan.lighting[lo:hi].to(self.device), self._mean.view(3),
                                 self._std.view(3))
        else:
            inv = 1 / self._std.view(1, 3)
            m = torch.diag_embed(inv.expand(n, 3))
            c = -self._mean.view(1, 3) * inv
            c = c.expand(n, 3)
        # M x / 255 + c in one pass (x is 0-255).
        x = torch.baddbmm(c[:, :, None], m / 255.0, x.reshape(n, 3, -1)).view(
            n, 3, self.size, self.size)
        if not on_cpu and bool(flips.any()):
            x = torch.where(flips.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels_host[idx].to(self.device, non_blocking=True)

    def _crop_resize(self, decoded: list[torch.Tensor], boxes: torch.Tensor,
                     flips: torch.Tensor | None = None) -> torch.Tensor:
        """Each image's box resized to size x size, bilinear with antialiasing (area-like when
        shrinking). CUDA: one roi_align over the zero-padded batch (adaptive sampling); CPU:
        per image, torch's uint8 antialiased resize (its vectorised path), each crop flipped
        first where `flips` says (a mirror commutes with the resize)."""
        n, s = len(decoded), self.size
        if self.device.type == "cuda":
            from torchvision.ops import roi_align

            height = max(int(t.shape[1]) for t in decoded)
            width = max(int(t.shape[2]) for t in decoded)
            padded = torch.zeros(n, 3, height, width, dtype=torch.uint8, device=self.device)
            for i, t in enumerate(decoded):
                padded[i, :, :t.shape[1], :t.shape[2]] = t
            rois = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], boxes], dim=1)
            return roi_align(padded.float(), rois.to(self.device), output_size=(s, s),
                             spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out = torch.empty(n, 3, s, s, dtype=torch.uint8)
        for i, (t, box) in enumerate(zip(decoded, boxes.round().to(torch.int64).tolist())):
            x1, y1, x2, y2 = box
            crop = t[None, :, y1:y2, x1:x2]
            if flips is not None and bool(flips[i]):
                crop = crop.flip(-1)
            crop = crop.contiguous(memory_format=torch.channels_last)
            out[i] = F.interpolate(crop, size=(s, s), mode="bilinear", antialias=True,
                                   align_corners=False)[0]
        return out.float()

    # --- the epoch --------------------------------------------------------------------------

    def _ranges(self, start_step: int, rank: int, ranks: int) -> Iterator[tuple[int, int]]:
        for start in range(start_step * self.batch_size, self.num_samples, self.batch_size):
            lo, hi = part(min(self.batch_size, self.num_samples - start), rank, ranks)
            yield start + lo, start + hi

    def shard_batches(self, epoch: int, rank: int = 0, ranks: int = 1, start_step: int = 0
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Rank `rank`'s contiguous part of every global batch from step `start_step` on."""
        plan = self.plan(epoch)
        ranges = self._ranges(start_step, rank, ranks)
        if self.device.type != "cuda":
            for lo, hi in ranges:
                yield self.make_batch(plan, lo, hi)
            return
        yield from self._prefetched(plan, ranges)

    def _prefetched(self, plan: EpochPlan, ranges: Iterator[tuple[int, int]]
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """CUDA: batch k+1 is made on a side stream while the model works on batch k."""
        side = torch.cuda.Stream(device=self.device)
        main = torch.cuda.current_stream(self.device)
        ahead = None
        for lo, hi in ranges:
            side.wait_stream(main)
            with torch.cuda.stream(side):
                made = self.make_batch(plan, lo, hi)
            if ahead is not None:
                yield ahead
            main.wait_stream(side)
            for t in made:
                t.record_stream(main)
            ahead = made
        if ahead is not None:
            yield ahead

    def batches(self, epoch: int, start_step: int = 0
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x float32 NCHW normalised, y int64) on the device; the last partial batch kept."""
        return self.shard_batches(epoch, 0, 1, start_step)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)
