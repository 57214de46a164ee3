"""Tiny datasets written in each publisher's official on-disk layout (a few JPEGs per class).

Each ``write_<type>(root)`` returns ``(train_size, test_size, class_names, removable)``: the split
sizes the loader must find, the clean class names it must report (None: the loader's own list), and
one metadata file whose absence must be named in the error. Every image is written through
:func:`jpeg`, which records the 0-based label the loader must give it in ``LABELS[path]``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


LABELS: dict[str, int] = {}


def jpeg(path: Path, label: int, size=(40, 30), code=None):
    """A solid JPEG whose colour encodes ``code`` (default: the label)."""
    from PIL import Image

    LABELS[str(path)] = label
    path.parent.mkdir(parents=True, exist_ok=True)
    c = label if code is None else code
    colour = ((c * 70) % 256, (c * 130 + 40) % 256, (c * 30 + 90) % 256)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=90)


def write_cub(root: Path, names=("Black footed Albatross", "Laysan Albatross", "Groove billed Ani")):
    base = root / "CUB_200_2011"
    base.mkdir(parents=True)
    images, labels, split, classes = [], [], [], []
    img_id = 0
    for k, name in enumerate(names, 1):
        folder = f"{k:03d}.{name.replace(' ', '_')}"
        classes.append(f"{k} {folder}")
        for j in range(3):  # 2 train, 1 test per class
            img_id += 1
            rel = f"{folder}/{name.split()[-1]}_{j:04d}_{img_id}.jpg"
            jpeg(base / "images" / rel, k - 1)
            images.append(f"{img_id} {rel}")
            labels.append(f"{img_id} {k}")
            split.append(f"{img_id} {int(j < 2)}")
    for fname, lines in [("images.txt", images), ("image_class_labels.txt", labels),
                         ("train_test_split.txt", split), ("classes.txt", classes)]:
        (base / fname).write_text("\n".join(lines) + "\n")
    return 2 * len(names), len(names), list(names), base / "train_test_split.txt"


def write_caltech101(root: Path, counts=(("Faces_easy", 5), ("car_side", 4), ("water_lilly", 6))):
    base = root / "caltech101" / "101_ObjectCategories"
    names = sorted(c for c, _ in counts)
    for cat, n in list(counts) + [("BACKGROUND_Google", 3)]:
        for i in range(1, n + 1):
            jpeg(base / cat / f"image_{i:04d}.jpg", names.index(cat) if cat in names else -1)
    total = sum(n for _, n in counts)
    n_train = round(total * 4310 / 8677)
    return n_train, total - n_train, [c.replace("_", " ") for c in names], base


def write_flowers(root: Path):
    from scipy.io import savemat

    base = root / "flowers-102"
    labels = [1, 1, 1, 1, 2, 2, 2, 2, 102, 102, 102, 102]  # 1-based, as the .mat files
    for i, y in enumerate(labels, 1):
        jpeg(base / "jpg" / f"image_{i:05d}.jpg", y - 1)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 5, 9]], dtype=np.uint16),
                                 "valid": np.array([[2, 6, 10]], dtype=np.uint16),
                                 "tstid": np.array([[3, 4, 7, 8, 11, 12]], dtype=np.uint16)})
    return 6, 6, None, base / "setid.mat"


def write_aircraft(root: Path, names=("707-320", "A300B4", "F/A-18")):
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(names) + "\n")
    lines = {"trainval": [], "test": []}
    img = 1000000
    for k, name in enumerate(names):
        for split, n in (("trainval", 2), ("test", 1)):
            for _ in range(n):
                img += 1
                jpeg(data / "images" / f"{img}.jpg", k)
                lines[split].append(f"{img} {name}")
    for split, ls in lines.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(ls) + "\n")
    return 2 * len(names), len(names), list(names), data / "images_variant_test.txt"


def write_pets(root: Path):
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 3, 1)]
    lines = {"trainval": [], "test": []}
    for name, cid, species in breeds:
        for j in range(1, 4):
            image = f"{name}_{j}"
            jpeg(base / "images" / f"{image}.jpg", cid - 1)
            lines["trainval" if j < 3 else "test"].append(f"{image} {cid} {species} {cid}")
    for split, ls in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return 6, 3, ["Abyssinian", "American Bulldog", "Bengal"], base / "annotations" / "trainval.txt"


def _cars_annotations(entries):
    dtype = [(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    arr = np.zeros((1, len(entries)), dtype=dtype)
    for i, (fname, cls) in enumerate(entries):
        arr[0, i] = (np.uint8(1), np.uint8(1), np.uint8(30), np.uint8(20), np.uint8(cls), fname)
    return {"annotations": arr}


def write_cars(root: Path, names=("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TT RS Coupe 2012")):
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    train, test = [], []
    for k, _ in enumerate(names, 1):
        for j in range(3):
            fname = f"{len(train) + len(test) + 1:05d}.jpg"
            if j < 2:
                jpeg(base / "cars_train" / fname, k - 1)
                train.append((fname, k))
            else:
                jpeg(base / "cars_test" / fname, k - 1)
                test.append((fname, k))
    class_names = np.empty((1, len(names)), dtype=object)
    for i, n in enumerate(names):
        class_names[0, i] = n
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": class_names})
    savemat(base / "devkit" / "cars_train_annos.mat", _cars_annotations(train))
    savemat(base / "cars_test_annos_withlabels.mat", _cars_annotations(test))
    return len(train), len(test), list(names), base / "devkit" / "cars_meta.mat"


WATERBIRD_SPECIES = {1: "Black_footed_Albatross", 2: "Laysan_Albatross", 45: "Northern_Fulmar",
                     100: "Brown_Pelican", 36: "Northern_Flicker"}


def write_waterbirds(root: Path, rows=None):
    """``rows``: ``(species number, y, split, place)``; default: every (split, group) is present."""
    if rows is None:
        rows = [(1, 1, 0, 1), (2, 1, 0, 0), (36, 0, 0, 0), (45, 0, 0, 1), (100, 1, 1, 1),
                (1, 0, 2, 0), (2, 0, 2, 0), (36, 0, 2, 1), (45, 1, 2, 0), (100, 1, 2, 1), (1, 1, 2, 1)]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["img_id", "img_filename", "y", "split", "place", "place_filename"])
        for i, (sp, y, split, place) in enumerate(rows, 1):
            rel = f"{sp:03d}.{WATERBIRD_SPECIES[sp]}/{WATERBIRD_SPECIES[sp]}_{i:04d}.jpg"
            jpeg(root / rel, y, code=2 * y + place)
            w.writerow([i, rel, y, split, place, f"/b/bamboo_forest/{i:08d}.jpg"])
    n_train = sum(1 for r in rows if r[2] == 0)
    n_test = sum(1 for r in rows if r[2] == 2)
    return n_train, n_test, ["landbird", "waterbird"], root / "metadata.csv"


def write_imagenet_group(root: Path, group="bird"):
    from lavid_plugin.data.datasets import imagenet_groups

    members = sorted(imagenet_groups()[group])
    jpeg(root / "train" / "n01440764" / "tench_0.JPEG", -1)  # a class of another group: left out
    for k, (wnid, _) in enumerate(members):
        for split, n in (("train", 2), ("val", 1)):
            for j in range(n):
                jpeg(root / split / wnid / f"{wnid}_{j}.JPEG", k)
    return 2 * len(members), len(members), [n for _, n in members], root / "val" / members[-1][0]


WRITERS = {"cub": write_cub, "caltech101": write_caltech101, "flowers": write_flowers, "aircraft": write_aircraft,
           "pets": write_pets, "cars": write_cars, "waterbirds": write_waterbirds,
           "imagenet_group": write_imagenet_group}
