"""Images/s of reduced-size JPEG decoding (PIL draft mode) against plain decoding, side by side.

    python scripts/bench_data.py [--images 300] [--sizes 224 112 64] [--repeats 3] [--workers N]

Generates 500x375 JPEGs (CUB's typical size) with photographic-like texture, then times, in one
process and interleaved, ``ImageList`` loading + the paper's train and test transforms with
``draft_size`` off (plain PIL decode) and on. Draft mode only pays when the source's shorter side is
at least twice the decode size (``round(size*256/224)``), so at 224 px on 500x375 images the two
paths are the same work; the gain shows at smaller training sizes or on larger sources.

Then the number that matters on a GPU: the train loader's images/s (batch 16, 224 px, the paper's
transforms, ``--workers`` processes, pinned memory) beside the images/s of a ResNet-18 training step
at the same batch (bf16, channels_last, on CUDA when present); a loader under 1.2x the step rate
starves the GPU. With ``DATASET.DECODE_ON_DEVICE`` the workers only read bytes and the step decodes
(nvJPEG on CUDA): the same comparison, the decoding counted in the step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def make_jpegs(folder: Path, n: int, size=(500, 375)):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        base = np.stack([(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(0.1, 0.5) + rng.uniform(0, 255)) % 256
                         for _ in range(3)], -1)
        img = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
        p = folder / f"{i:04d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(p)
    return paths


def images_per_s(dataset, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        best = max(best, len(dataset) / (time.perf_counter() - t0))
    return best


def loader_images_per_s(samples, workers: int, batch: int = 16, size: int = 224, batches: int = 60,
                        normalize: bool = True, encoded: bool = False) -> float:
    import torch

    from lavid_plugin.config import load_cfg
    from lavid_plugin.data import ImageList, Splits, build_loaders
    from lavid_plugin.data.transforms import decode_size, test_transform, train_transform

    cfg = load_cfg(None, ["SOLVER.BATCH_SIZE", str(batch), "DATASET.NUM_WORKERS", str(workers),
                          "DATASET.DECODE_ON_DEVICE", str(encoded)])
    samples = samples * -(-(batches + 4) * batch // len(samples))  # one epoch: no worker start-up inside the timing
    train = ImageList(samples, ["x"], train_transform(size, normalize=normalize), with_index=True,
                      draft_size=decode_size(size))
    loader, _ = build_loaders(cfg, Splits(train, ImageList(samples[:1], ["x"], test_transform(size)), ["x"]),
                              generator=torch.Generator().manual_seed(0))
    n, t0 = 0, None
    for i, (x, *_) in enumerate(loader):
        if i == 2:  # workers started and warm
            t0, n = time.perf_counter(), 0
        n += len(x)
        if t0 is not None and n >= batches * batch:
            break
    return n / (time.perf_counter() - t0)


def decoder_images_per_s(samples, batch: int = 16, size: int = 224, batches: int = 30) -> float:
    """DATASET.DECODE_ON_DEVICE's other half: decoding + the training view of byte batches on the device."""
    import torch
    from torchvision.io import read_file

    from lavid_plugin.data.device_decode import DeviceDecoder

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    decoder = DeviceDecoder(size, dev)
    data = [read_file(p) for p, _ in samples[:batch]]
    decoder(data)
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(batches):
        decoder(data)
    if dev == "cuda":
        torch.cuda.synchronize()
    return batches * batch / (time.perf_counter() - t0)


def step_images_per_s(batch: int = 16, size: int = 224, steps: int = 20) -> tuple[float, str]:
    import torch

    from lavid_plugin.models import build_model

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model("resnet18", 200).to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    if dev == "cuda":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x)[0], y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0), dev


def main(argv=None) -> int:
    import torch

    from lavid_plugin.data import ImageList
    from lavid_plugin.data.transforms import decode_size, test_transform, train_transform

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 112, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="loader processes for the loader-vs-step comparison (default: up to 8, at most the cores)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), args.images)
        samples = [(str(q), 0) for q in paths]
        print(f"{args.images} JPEGs of 500x375, one process, best of {args.repeats}")
        print(f"{'size':>5} {'view':>5} {'decode to':>10} {'plain img/s':>12} {'draft img/s':>12} {'ratio':>7}")
        for size in args.sizes:
            for view, tf in (("train", train_transform(size)), ("test", test_transform(size))):
                plain = ImageList(samples, ["x"], tf)
                draft = ImageList(samples, ["x"], tf, draft_size=decode_size(size))
                a, b = images_per_s(plain, args.repeats), images_per_s(draft, args.repeats)
                decoded = draft.load(0).size
                print(f"{size:>5} {view:>5} {f'{decoded[0]}x{decoded[1]}':>10} {a:>12.1f} {b:>12.1f} {b / a:>6.2f}x")
        raw_plain = ImageList(samples, ["x"])
        raw_draft = ImageList(samples, ["x"], draft_size=decode_size(min(args.sizes)))
        a, b = images_per_s(raw_plain, args.repeats), images_per_s(raw_draft, args.repeats)
        print(f"decode only (no transform), draft to {decode_size(min(args.sizes))}: plain {a:.1f} img/s, "
              f"draft {b:.1f} img/s, {b / a:.2f}x")
        torch.set_num_threads(max(1, torch.get_num_threads()))
        step, dev = step_images_per_s()
        print(f"ResNet-18 training step on {dev}, batch 16, 224 px: {step:.1f} img/s")
        for label, normalize in (("float images (default)", True), ("uint8, DATASET.NORMALIZE_ON_DEVICE", False)):
            loader = loader_images_per_s(samples, args.workers, normalize=normalize)
            print(f"train loader, {args.workers} workers, {label}: {loader:.1f} img/s; loader / step "
                  f"{loader / step:.2f}x (keep it >= 1.2x)")
        loader = loader_images_per_s(samples, args.workers, encoded=True)
        dec = decoder_images_per_s(samples)
        both = 1 / (1 / step + 1 / dec)  # the step now decodes too
        print(f"DATASET.DECODE_ON_DEVICE: loader (file bytes) {loader:.1f} img/s, decode + view on {dev} {dec:.1f} "
              f"img/s; step with decoding {both:.1f} img/s; loader / step {loader / both:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
