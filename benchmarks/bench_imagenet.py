"""ImageNet: sdnet's JPEG loader vs torchvision's reference pipeline, prepare throughput, and (on a
GPU) ResNet-152 training steps.

Parts (`--parts`, default all that fit the device):
- loader: images/s delivered as normalised float batches where training needs them, side by
  side in one run (interleaved rounds, medians):
  * sdnet: `sdnet.data.jpeg_loader.JpegLoader` over a memory-mapped JPEG store (decode with
    torchvision.io.decode_jpeg in one batched call, crop/resize/jitter/lighting/flip as tensor
    ops; on the CPU with torch's intra-op threads, on CUDA with nvJPEG);
  * tv-wN: torchvision's conventional pipeline: ImageFolder + RandomResizedCrop(224) +
    RandomHorizontalFlip + ColorJitter(0.4, 0.4, 0.4) + ToTensor + Normalize in a DataLoader
    with N worker processes (default: the machine's cores), persistent, as timm-style training
    runs it (plus the host-to-device copy on CUDA). It has no PCA lighting (sdnet's does).
  The images are synthetic but photo-sized (longer side 300-500 px, JPEG quality 90, noise
  added so the files are about ImageNet's size); the mean file size is recorded.
- prepare: the per-core throughput of prepare's two pool tasks (train: decode + re-encode at
  most 512 px; val/test: shorter side 256 bicubic + centre crop 224), one process, and the
  projection for the real 1,281,167 + 50,000 images on a 16-core node.
- model (GPU; runs on a CPU with --quick only): ResNet-152 (ImageNet layout, 1000 classes)
  training steps, constant and stochastic depth (linear, p_L 0.5), bf16 autocast and float32,
  channels_last, images/s; random inputs (the loader is measured on its own).

    .venv/bin/python -m benchmarks.bench_imagenet                 # CPU: loader + prepare
    .venv/bin/python -m benchmarks.bench_imagenet --device cuda   # GPU: loader + model
    .venv/bin/python -m benchmarks.bench_imagenet --quick         # smoke run
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from sdnet.data.jpegs import JpegImages

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
REAL_TRAIN, REAL_TEST = 1_281_167, 50_000


# --- synthetic photo-sized JPEGs -----------------------------------------------------------------

def synthetic_jpegs(count: int, seed: int = 0, sides: tuple[int, int] = (300, 500)
                    ) -> tuple[list[bytes], np.ndarray]:
    """`count` JPEGs (quality 90) of class patterns resized to 300-500 px a side, with noise
    added after resizing (as photos have detail); labels 0..9."""
    from PIL import Image

    from sdnet.data.fake import fake_images

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    small = fake_images(labels, rng, size=96)
    out = []
    for image in small:
        w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        big = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR),
                         np.float32)
        big = np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out, labels


def jpeg_store(jpegs: list[bytes], folder: Path) -> JpegImages:
    """The prepared form: one file of JPEGs, memory-mapped, with its index."""
    from PIL import Image

    path = folder / "train.jpegs"
    path.write_bytes(b"".join(jpegs))
    lengths = np.array([len(j) for j in jpegs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    sizes = [Image.open(io.BytesIO(j)).size for j in jpegs]
    return JpegImages(np.memmap(path, np.uint8, mode="r"), offsets, lengths,
                      np.array([h for _, h in sizes], np.int32),
                      np.array([w for w, _ in sizes], np.int32), 224)


def image_folder(jpegs: list[bytes], labels: np.ndarray, folder: Path) -> Path:
    root = folder / "imagefolder"
    for i, (data, label) in enumerate(zip(jpegs, labels)):
        d = root / f"class{label:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"img{i:06d}.JPEG").write_bytes(data)
    return root


# --- the loader part -----------------------------------------------------------------------------

class SdnetVariant:
    def __init__(self, images: JpegImages, labels: np.ndarray, args: argparse.Namespace) -> None:
        from sdnet.data.jpeg_loader import JpegLoader

        self.loader = JpegLoader(images, labels, batch_size=args.batch_size, device=args.device,
                                 mean=MEAN, std=STD, seed=0,
                                 channels_last=args.device.startswith("cuda"))
        self.batches = args.batches
        self.epoch = 0

    def __call__(self) -> None:
        self.epoch += 1
        for step, (x, _) in enumerate(self.loader.batches(self.epoch)):
            if step + 1 == self.batches:
                break
        x.sum().item()  # the last batch is done


class TorchvisionVariant:
    def __init__(self, root: Path, args: argparse.Namespace, workers: int) -> None:
        from torchvision import datasets, transforms

        tf = transforms.Compose([
            transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.4, 0.4, 0.4), transforms.ToTensor(),
            transforms.Normalize(MEAN, STD)])
        ds = datasets.ImageFolder(str(root), transform=tf)
        cuda = args.device.startswith("cuda")
        self.loader = torch.utils.data.DataLoader(
            ds, batch_size=args.batch_size, shuffle=True, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=cuda, drop_last=True)
        self.device, self.batches = args.device, args.batches
        self.it = iter(self.loader)

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def __call__(self) -> None:
        for _ in range(self.batches):
            x, _ = self._next()
            x = x.to(self.device, non_blocking=True)
        x.sum().item()


def loader_part(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    count = args.batch_size * args.batches * 2  # two samples' worth: epochs reshuffle
    jpegs, labels = synthetic_jpegs(count)
    images = jpeg_store(jpegs, folder)
    variants: dict[str, Any] = {"sdnet": SdnetVariant(images, labels, args)}
    root = image_folder(jpegs, labels, folder)
    for w in args.workers:
        variants[f"tv-w{w}"] = TorchvisionVariant(root, args, w)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    items = {name: args.batch_size * args.batches for name in variants}
    samples = common.interleave(variants, args.repeats, warmup=1, sync=sync, items=items)
    out = {name: s.summary() for name, s in samples.items()}
    for name in variants:
        if name != "sdnet":
            out[name]["ratio_to_sdnet"] = common.paired_ratio(samples[name], samples["sdnet"])
    out["mean_jpeg_kb"] = float(np.mean([len(j) for j in jpegs]) / 1024)
    out["mean_pixels"] = float(np.mean(images.heights.astype(float) * images.widths))
    return out


# --- the prepare part ----------------------------------------------------------------------------

def prepare_part(args: argparse.Namespace) -> dict[str, Any]:
    from sdnet.data.imagenet import eval_chunk, train_chunk

    count = 16 if args.quick else 200
    jpegs, _ = synthetic_jpegs(count, seed=1)
    members = [(f"img{i}.JPEG", j) for i, j in enumerate(jpegs)]
    variants = {"train (re-encode)": lambda: train_chunk(members, "bench", 512),
                "val/test (256 + crop 224)": lambda: eval_chunk(members, "bench")}
    samples = common.interleave(variants, args.repeats, warmup=1,
                                items=dict.fromkeys(variants, count), clock=time.process_time)
    out = {name: s.summary() for name, s in samples.items()}
    per_core_train = out["train (re-encode)"]["items_per_s"]
    per_core_eval = out["val/test (256 + crop 224)"]["items_per_s"]
    core_seconds = REAL_TRAIN / per_core_train + (REAL_TEST + 10_000) / per_core_eval
    out["projection_16_cores_min"] = core_seconds / 16 / 60
    out["note"] = ("CPU seconds of one process (time.process_time); real photos average "
                   "~400x350 px, a few are much larger (decoded at 1/2-1/8 scale by draft)")
    return out


# --- the model part ------------------------------------------------------------------------------

def model_part(args: argparse.Namespace) -> dict[str, Any]:
    from sdnet.models import build_model

    device = torch.device(args.device)
    batch = 4 if args.quick else args.model_batch
    size = 64 if args.quick and device.type == "cpu" else 224
    x = torch.randn(batch, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    variants, models = {}, {}
    for survival in ("none", "linear"):
        torch.manual_seed(0)
        model = build_model(152, "imagenet", num_classes=1000, image_size=size,
                            survival=survival, p_last=0.5).to(device)
        model = model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                              weight_decay=1e-4)
        models[survival] = (model, opt)
        for amp in ("bf16", "fp32"):
            def step(model: Any = model, opt: Any = opt, amp: str = amp) -> None:
                for _ in range(args.steps):
                    with torch.autocast(device.type, torch.bfloat16, enabled=amp == "bf16"):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    opt.zero_grad(set_to_none=False)
                    loss.backward()
                    opt.step()
            name = f"{'constant' if survival == 'none' else 'stochastic'}-{amp}"
            variants[name] = step
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    samples = common.interleave(variants, args.repeats, warmup=1, sync=sync,
                                items=dict.fromkeys(variants, batch * args.steps))
    out = {name: s.summary() for name, s in samples.items()}
    for amp in ("bf16", "fp32"):
        out[f"speedup-{amp}"] = common.paired_ratio(samples[f"constant-{amp}"],
                                                    samples[f"stochastic-{amp}"])
    out["batch"], out["image_size"] = batch, size
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.base_parser(__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", choices=("loader", "prepare", "model"), default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=None, help="loader batches per sample")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="DataLoader workers of the reference (default: the machine's cores)")
    p.add_argument("--steps", type=int, default=None, help="model steps per sample")
    p.add_argument("--model-batch", type=int, default=128, help="model batch per GPU")
    args = p.parse_args(argv)
    common.apply_threads(args)
    cuda = args.device.startswith("cuda")
    args.parts = args.parts or (["loader", "model"] if cuda else ["loader", "prepare"])
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.batches = args.batches or (2 if args.quick else (20 if cuda else 4))
    if args.quick:
        args.batch_size = min(args.batch_size, 16)
    args.steps = args.steps or (1 if args.quick else 10)
    args.workers = args.workers if args.workers is not None else [len(os.sched_getaffinity(0))]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "loader" in args.parts:
            results["loader"] = loader_part(args, Path(tmp))
        if "prepare" in args.parts:
            results["prepare"] = prepare_part(args)
        if "model" in args.parts:
            results["model"] = model_part(args)
    common.write_result(args.out, "imagenet-" + "-".join(args.parts), args, results)
    rows = []
    for part, figures in results.items():
        for name, value in figures.items():
            if isinstance(value, dict) and "items_per_s" in value:
                ratio = value.get("ratio_to_sdnet", {}).get("paired_median")
                rows.append({"part": part, "variant": name, "images/s": value["items_per_s"],
                             "median s": value["median_s"], "time / sdnet": ratio})
            elif isinstance(value, dict) and "paired_median" in value:
                rows.append({"part": part, "variant": name + " (constant/stochastic time)",
                             "images/s": None, "median s": None,
                             "time / sdnet": value["paired_median"]})
            elif not isinstance(value, (dict, str)):
                rows.append({"part": part, "variant": name, "images/s": value,
                             "median s": None, "time / sdnet": None})
    common.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
