#!/usr/bin/env python
"""Images/s of Stage 1b vs the authors' loops: features (batched vs one image per forward pass) and MaKD's
aspects (the image once per image, the questions from its cached keys and values, vs (image, question)
pairs 25 per pass).

A random LLaVA (CLIP vision tower + Llama) at a chosen width, the same images and prompts, one run,
side by side; the outputs are checked equal first:

    python scripts/bench_image_teacher.py [--images 64] [--batch-size 16] [--image-size 224] [--hidden 256]
"""

import argparse
import time

import numpy as np
import torch
from PIL import Image

from lavid_plugin.image_teacher.jobs import TeacherImages, extract_bank, feature_job
from lavid_plugin.image_teacher.tiny_vlm import build_tiny_llava
from lavid_plugin.image_teacher.vlm import PAPER_FEATURE_TEMPLATE, VLMTeacher

NAMES = ["Black footed Albatross", "Laysan Albatross", "Groove billed Ani", "Crested Auklet", "Least Auklet",
         "Parakeet Auklet", "Rhinoceros Auklet", "Brewer Blackbird"]
LAYERS = [-1, -2]


def authors_loop(teacher, images, prompts):
    """``vlm_feature.py``: per image, the processor and one forward pass with all hidden states."""
    out = []
    for img, prompt in zip(images, prompts):
        enc = teacher.processor(text=[prompt], images=img, padding=True, return_tensors="pt").to(teacher.model.device)
        enc["pixel_values"] = enc["pixel_values"].to(teacher.model.dtype)
        with torch.inference_mode():
            hs = teacher.model(**enc, output_hidden_states=True).hidden_states
        out.append({layer: (hs[layer][0, -1].float().cpu(), hs[layer][0].float().mean(0).cpu()) for layer in LAYERS})
    return out


class Images:
    def __init__(self, n, size):
        rng = np.random.default_rng(0)
        self.imgs = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]

    def load(self, i):
        return self.imgs[i]


ASPECTS = ["Is the beak long?", "Does the bird have a crest?", "Is the head blue?", "Are there wing bars?",
           "Is the back dark?", "Is the belly pale?", "Is the tail forked?", "Is it standing on a branch?",
           "Is the eye ring white?", "Is the bill hooked?"]


def aspects_authors(teacher, images, prompts, ids, batch_size):
    """``llava_logits.py``: (image, question) pairs in order, ``batch_size`` prompts per forward pass."""
    pairs = [(img, p) for img in images for p in prompts]
    out = []
    for i in range(0, len(pairs), batch_size):
        part = pairs[i:i + batch_size]
        out.append(teacher.yes_probability([a for a, _ in part], [b for _, b in part], ids))
    return torch.cat(out).view(len(images), len(prompts))


def bench_aspects(args, teacher, ds, images, sync):
    from lavid_plugin.image_teacher.jobs import aspect_job
    from lavid_plugin.image_teacher.vlm import PAPER_ASPECT_TEMPLATE

    job = aspect_job(teacher, ASPECTS[: args.aspects], PAPER_ASPECT_TEMPLATE)
    prompts, ids = job.prompts(0), job.provenance["label_token_ids"]
    n = min(args.images, 16)
    t = time.perf_counter()
    ref = aspects_authors(teacher, ds.imgs[:n], prompts, ids, 25)
    sync()
    t_authors = time.perf_counter() - t
    t = time.perf_counter()
    shared = torch.stack([job.run_image(img, args.batch_size)["p_yes"] for img in ds.imgs[:n]])
    sync()
    t_shared = time.perf_counter() - t
    worst = float((shared - ref).abs().max())
    print(f"\naspects ({len(prompts)} questions per image, {n} images)")
    print(f"{'authors loop (25 prompts/pass)':34s}{n / t_authors:10.2f} img/s")
    print(f"{'image once, questions from cache':34s}{n / t_shared:10.2f} img/s")
    print(f"ratio: {t_authors / t_shared:.2f}x (P(Yes) equal within {worst:.1e})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vision-hidden", type=int, default=128)
    ap.add_argument("--aspects", type=int, default=10, help="aspect questions per image (0: features only)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    model, processor = build_tiny_llava(NAMES + ASPECTS, hidden=args.hidden, layers=args.layers, image_size=args.image_size,
                                        patch=args.patch, vision_hidden=args.vision_hidden)
    model = model.to(args.device, torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    teacher = VLMTeacher(model, processor, model_id="bench")
    labels = [i % len(NAMES) for i in range(args.images)]
    ds = Images(args.images, args.image_size)
    images = TeacherImages(ds, [f"img{i}.jpg" for i in range(args.images)], labels, NAMES, {"type": "bench"})
    job = feature_job(teacher, images, LAYERS, PAPER_FEATURE_TEMPLATE)
    prompts = [job.prompts(i)[0] for i in range(args.images)]
    tokens = processor(text=[prompts[0]], images=[ds.imgs[0]], return_tensors="pt")["input_ids"].shape[1]

    authors_loop(teacher, ds.imgs[:2], prompts[:2])  # warm-up
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sync()
    t = time.perf_counter()
    ref = authors_loop(teacher, ds.imgs, prompts)
    sync()
    t_loop = time.perf_counter() - t

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bank = extract_bank(teacher, images, job, f"{tmp}/bank.safetensors", batch_size=args.batch_size,
                            chunk_size=max(args.images, 1), progress=False)
        sync()
        t_batched = time.perf_counter() - t
    tol = 2e-2 if args.device.startswith("cuda") else 3e-3
    worst = max(float((bank.tensors()[f"{k}{layer}"][i].float() - r[layer][j].half().float()).abs().max())
                for i, r in enumerate(ref) for layer in LAYERS for j, k in enumerate(("last", "mean")))
    assert worst < tol * 10, f"batched and one-at-a-time outputs differ by {worst}"
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {dev}; LLaVA-shaped random model: vision {args.vision_hidden}-wide at {args.image_size} px / "
          f"patch {args.patch}, language {args.hidden}-wide x {args.layers} layers; {tokens} tokens per prompt (image tokens included)")
    print(f"{'':28s}{'images/s':>10s}")
    print(f"{'authors loop (1 per pass)':28s}{args.images / t_loop:10.1f}")
    print(f"{f'batched ({args.batch_size} per pass)':28s}{args.images / t_batched:10.1f}")
    print(f"ratio batched / authors: {t_loop / t_batched:.2f}x (outputs equal within {worst:.1e})")
    if args.aspects:
        bench_aspects(args, teacher, ds, images, sync)


if __name__ == "__main__":
    main()
