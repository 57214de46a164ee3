"""Images/s of reduced-size JPEG decoding (PIL draft mode) against plain decoding, side by side.

    python scripts/bench_data.py [--images 300] [--sizes 224 112 64] [--repeats 3]

Generates 500x375 JPEGs (CUB's typical size) with photographic-like texture, then times, in one
process and interleaved, ``ImageList`` loading + the paper's train and test transforms with
``draft_size`` off (plain PIL decode) and on. Draft mode only pays when the source's shorter side is
at least twice the decode size (``round(size*256/224)``), so at 224 px on 500x375 images the two
paths are the same work; the gain shows at smaller training sizes or on larger sources.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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


def main(argv=None) -> int:
    import torch

    from lavid_plugin.data import ImageList
    from lavid_plugin.data.transforms import decode_size, test_transform, train_transform

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 112, 64])
    p.add_argument("--repeats", type=int, default=3)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
