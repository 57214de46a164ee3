"""The embedded demo dataset: small drawn birds whose classes differ by visible attributes.

Twelve classes, each a combination of head colour, wing pattern, bill length and crest; a few hundred
64x64 images generated deterministically (seeded) on first use in an ImageFolder layout::

    ROOT/train/<class name>/0000.png   ROOT/test/<class name>/0000.png   ROOT/classes.json

Class names spell out the attributes ("Red-headed Barred Longbill with crest"), so a language model
can answer the shipped attribute questions from the name alone, which is what LaViD needs.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from ..utils import atomic_write_json

HEADS = {"Red": (200, 30, 30), "Blue": (30, 60, 200), "Yellow": (230, 200, 20)}
WINGS = ("Plain", "Barred")
BILLS = ("Shortbill", "Longbill")
CRESTS = ("with crest", "without crest")
VERSION = 1
#: the shipped questions' (assets/demo/questions.txt) correct option per attribute, in question order
ANSWER_KEY = (("head", ("Red", "Blue", "Yellow")), ("wing", WINGS), ("bill", BILLS), ("crest", CRESTS))
#: the reference signature's probability on the correct option ("a teacher that knows the attributes")
REFERENCE_CONFIDENCE = 0.95
DEMO_QUESTIONS = Path(__file__).resolve().parents[1] / "assets" / "demo" / "questions.txt"


def demo_classes() -> list[tuple[str, dict]]:
    combos = list(itertools.product(HEADS, WINGS, BILLS, CRESTS))
    rng = random.Random(7)
    rng.shuffle(combos)
    out = []
    for head, wing, bill, crest in sorted(combos[:12]):
        name = f"{head}-headed {wing} {bill} {crest}"
        out.append((name, {"head": head, "wing": wing, "bill": bill, "crest": crest}))
    return out


def draw_bird(attrs: dict, rng: random.Random, size: int = 64):
    from PIL import Image, ImageDraw

    bg = tuple(rng.randint(150, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(6):  # clutter
        x, y = rng.randint(0, size), rng.randint(0, size)
        r = rng.randint(2, 8)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randint(90, 255) for _ in range(3)))
    s = rng.uniform(0.8, 1.1)
    cx, cy = size / 2 + rng.uniform(-6, 6), size / 2 + rng.uniform(-4, 6)
    body = tuple(rng.randint(90, 140) for _ in range(3))
    d.ellipse([cx - 16 * s, cy - 9 * s, cx + 14 * s, cy + 11 * s], fill=body)  # body
    wing = [cx - 10 * s, cy - 5 * s, cx + 8 * s, cy + 7 * s]
    d.ellipse(wing, fill=tuple(max(0, c - 40) for c in body))
    if attrs["wing"] == "Barred":
        for i in range(3):
            x = cx - 6 * s + i * 5 * s
            d.line([x, cy - 4 * s, x, cy + 6 * s], fill=(250, 250, 250), width=2)
    hx, hy, hr = cx + 14 * s, cy - 10 * s, 7 * s
    d.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=HEADS[attrs["head"]])
    d.ellipse([hx + 2 * s, hy - 2 * s, hx + 4 * s, hy], fill=(0, 0, 0))  # eye
    bl = (14 if attrs["bill"] == "Longbill" else 5) * s
    d.polygon([(hx + hr - 1, hy - 2 * s), (hx + hr - 1, hy + 2 * s), (hx + hr + bl, hy + 1 * s)], fill=(240, 150, 20))
    if attrs["crest"] == "with crest":
        d.polygon([(hx - 4 * s, hy - hr + 2), (hx + 2 * s, hy - hr + 2), (hx - 3 * s, hy - hr - 9 * s)],
                  fill=HEADS[attrs["head"]])
    d.line([cx - 2 * s, cy + 10 * s, cx - 4 * s, cy + 17 * s], fill=(60, 40, 20), width=2)  # leg
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def ensure_demo_dataset(root: str | Path, train_per_class: int = 24, test_per_class: int = 12, seed: int = 0) -> Path:
    """Generate the dataset under ``root`` unless a complete copy of this version is there."""
    root = Path(root)
    marker = root / "classes.json"
    want = {"version": VERSION, "train": train_per_class, "test": test_per_class, "seed": seed}
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("build") == want:
            return root
    classes = demo_classes()
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for k, (name, attrs) in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            rng = random.Random(f"{seed}-{split}-{k}")
            for i in range(n):
                draw_bird(attrs, rng).save(folder / f"{i:04d}.png")
    atomic_write_json(marker, {"build": want, "classes": [n for n, _ in classes],
                               "attributes": {n: a for n, a in classes}})  # written last: marks completion
    return root


def demo_attributes() -> dict[str, list[int]]:
    """``{class name: [correct option number per shipped question]}``: the drawn attributes."""
    return {name: [values.index(attrs[key]) + 1 for key, values in ANSWER_KEY] for name, attrs in demo_classes()}


def ensure_attributes_file(root: str | Path) -> Path:
    """``ROOT/attributes.json`` (:func:`demo_attributes`), for ``lavid signature inspect --attributes``."""
    out = Path(root) / "attributes.json"
    if not out.is_file():
        atomic_write_json(out, demo_attributes())
    return out
