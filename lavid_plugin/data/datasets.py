"""The paper's datasets, read exactly as their publishers lay them out.

Each builder is ``builder(cfg, train_transform, val_transform, run_dir=None) -> Splits`` and is
registered in ``DATASETS`` under its ``DATASET.TYPE``. Where torchvision has a class for the layout
(Flowers-102, FGVC-Aircraft, Oxford-IIIT Pet, Stanford Cars, Caltech-101) it parses the metadata
(and downloads with ``DATASET.DOWNLOAD: True``); the plugin checks the layout first so that a
missing file is named, and decodes images itself (draft decoding, unreadable-image skipping).

The layout each one expects under ``DATASET.ROOT`` is :data:`LAYOUTS` (also in the README).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Callable

import torch

from ..errors import LavidError
from ..utils import atomic_write_json
from .images import ImageList, Splits, image_folder_samples

#: DATASET.TYPE -> what it expects under DATASET.ROOT (named in every missing-file error)
LAYOUTS = {
    "cub": "CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/} "
           "(or those files directly in ROOT)",
    "caltech101": "caltech101/101_ObjectCategories/<category>/image_NNNN.jpg",
    "flowers": "flowers-102/{jpg/, imagelabels.mat, setid.mat}",
    "aircraft": "fgvc-aircraft-2013b/data/{images/, variants.txt, images_variant_trainval.txt, "
                "images_variant_test.txt}",
    "pets": "oxford-iiit-pet/{images/, annotations/trainval.txt, annotations/test.txt}",
    "cars": "stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat, "
            "cars_train/, cars_test/}",
    "waterbirds": "metadata.csv + the image folders it names (img_filename, y, split, place)",
    "imagenet_group": "train/<wnid>/*.JPEG, val/<wnid>/*.JPEG (val sorted into class folders)",
}


def require(root: Path, rel_paths, dataset: str) -> None:
    """One clear error naming the first missing file and the layout the dataset expects."""
    for rel in rel_paths:
        if not (root / rel).exists():
            raise LavidError(f"{dataset}: missing {root / rel}\n  expected under DATASET.ROOT: {LAYOUTS.get(dataset, '')}\n"
                             f"  (DATASET.ROOT is where the publisher's archive was extracted)")


def download(dataset: str, tv_class, root: Path, **kw) -> None:
    """torchvision's ``download=True`` (``DATASET.DOWNLOAD``), its failure named."""
    try:
        tv_class(str(root), download=True, **kw)
    except Exception as e:  # network errors, dead URLs, checksum mismatches
        raise LavidError(f"{dataset}: torchvision could not download it into {root}: {type(e).__name__}: {e}\n"
                         f"  download it yourself; expected layout: {LAYOUTS[dataset]}") from None


def _splits(train_samples, val_samples, classes, train_tf, val_tf, **kw) -> Splits:
    return Splits(ImageList(train_samples, classes, train_tf, with_index=True),
                  ImageList(val_samples, classes, val_tf), list(classes), **kw)


# ---------------------------------------------------------------------------------------- CUB-200
def cub_class_name(raw: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"`` (the authors' cleaned names)."""
    return raw.split(".", 1)[-1].replace("_", " ").strip()


def _read_id_table(path: Path, what: str) -> dict[int, str]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise LavidError(f"{path}:{n}: expected '<id> <{what}>', got {line!r}")
        out[int(parts[0])] = parts[1].strip()
    return out


def cub(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    root = Path(cfg.DATASET.ROOT)
    if not (root / "images.txt").exists() and (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    files = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")
    require(root, files, "cub")
    images = _read_id_table(root / "images.txt", "relative path")
    labels = _read_id_table(root / "image_class_labels.txt", "class id")
    is_train = _read_id_table(root / "train_test_split.txt", "0/1")
    raw_classes = _read_id_table(root / "classes.txt", "class folder")
    classes = [cub_class_name(raw_classes[k]) for k in sorted(raw_classes)]
    train, test = [], []
    for img_id, rel in images.items():
        if img_id not in labels or img_id not in is_train:
            raise LavidError(f"cub: image id {img_id} ({rel}) has no label or split in {root}")
        sample = (str(root / "images" / rel), int(labels[img_id]) - 1)
        (train if is_train[img_id] == "1" else test).append(sample)
    return _splits(train, test, classes, train_tf, val_tf)


# ------------------------------------------------------------------------------------ Caltech-101
#: the paper's split sizes (of 8,677 images without BACKGROUND_Google); other totals keep the ratio
CALTECH_TRAIN, CALTECH_TEST = 4310, 4367


def caltech101(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """Caltech-101 without ``BACKGROUND_Google``, split at random (seed ``DATASET.SPLIT_SEED``) into
    the paper's sizes. The split is saved as ``caltech101_split.json`` in the run folder (reused on
    resume) and can be reused by other runs with ``DATASET.SPLIT_FILE``."""
    from torchvision.datasets import Caltech101

    root = Path(cfg.DATASET.ROOT)
    if cfg.DATASET.DOWNLOAD:
        download("caltech101", Caltech101, root)
    require(root, ("caltech101/101_ObjectCategories",), "caltech101")
    tv = Caltech101(str(root))
    base = root / "caltech101" / "101_ObjectCategories"
    # torchvision assumes image_0001..image_N per folder; list what is really there instead
    rel, labels = [], []
    for k, cat in enumerate(tv.categories):
        files = sorted(p.name for p in (base / cat).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        rel += [f"{cat}/{f}" for f in files]
        labels += [k] * len(files)
    classes = [c.replace("_", " ") for c in tv.categories]
    split_file = Path(cfg.DATASET.SPLIT_FILE) if cfg.DATASET.SPLIT_FILE else \
        (Path(run_dir) / "caltech101_split.json" if run_dir else None)
    if split_file is not None and split_file.is_file():
        split = json.loads(split_file.read_text())
        unknown = sorted(set(split["train"] + split["test"]) - set(rel))
        if unknown:
            raise LavidError(f"{split_file}: {len(unknown)} images of this split are not in {base}, e.g. {unknown[0]}")
    else:
        if cfg.DATASET.SPLIT_FILE:
            raise LavidError(f"DATASET.SPLIT_FILE {split_file} does not exist")
        order = torch.randperm(len(rel), generator=torch.Generator().manual_seed(cfg.DATASET.SPLIT_SEED)).tolist()
        n_train = round(len(rel) * CALTECH_TRAIN / (CALTECH_TRAIN + CALTECH_TEST))
        split = {"seed": cfg.DATASET.SPLIT_SEED, "train": sorted(rel[i] for i in order[:n_train]),
                 "test": sorted(rel[i] for i in order[n_train:])}
        if split_file is not None:
            atomic_write_json(split_file, split)
    label = dict(zip(rel, labels))
    train = [(str(base / r), label[r]) for r in split["train"]]
    test = [(str(base / r), label[r]) for r in split["test"]]
    return _splits(train, test, classes, train_tf, val_tf)


# ------------------------------------------------------------------------------------- Flowers-102
#: torchvision's Flowers102 names, except two the authors' released signatures spell differently
FLOWERS_RENAMES = {"pink-yellow dahlia?": "pink-yellow dahlia", "lotus": "lotus lotus"}


def _flowers_cls():
    from torchvision.datasets import Flowers102

    class _Flowers102(Flowers102):
        def _check_integrity(self):  # presence only: the plugin names missing files itself
            return all((self._base_folder / f).exists() for f in ("jpg", "imagelabels.mat", "setid.mat"))

    return _Flowers102


def flowers(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """Oxford 102 Flowers: train + val for training, test for testing (as the paper)."""
    root = Path(cfg.DATASET.ROOT)
    cls = _flowers_cls()
    if cfg.DATASET.DOWNLOAD:
        download("flowers", cls, root)
    require(root / "flowers-102", ("jpg", "imagelabels.mat", "setid.mat"), "flowers")
    parts = {s: cls(str(root), split=s) for s in ("train", "val", "test")}
    samples = {s: [(str(p), y) for p, y in zip(d._image_files, d._labels)] for s, d in parts.items()}
    classes = [FLOWERS_RENAMES.get(c, c) for c in cls.classes]
    return _splits(samples["train"] + samples["val"], samples["test"], classes, train_tf, val_tf)


# ----------------------------------------------------------------------------------- FGVC-Aircraft
def aircraft(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """FGVC-Aircraft at the variant level (100 classes): trainval for training, test for testing."""
    from torchvision.datasets import FGVCAircraft

    root = Path(cfg.DATASET.ROOT)
    if cfg.DATASET.DOWNLOAD:
        download("aircraft", FGVCAircraft, root)
    data = root / "fgvc-aircraft-2013b" / "data"
    require(data, ("images", "variants.txt", "images_variant_trainval.txt", "images_variant_test.txt"), "aircraft")
    try:
        parts = {s: FGVCAircraft(str(root), split=s) for s in ("trainval", "test")}
    except KeyError as e:
        raise LavidError(f"aircraft: variant {e} of an image list is not in {data / 'variants.txt'}") from None
    samples = {s: list(zip(d._image_files, d._labels)) for s, d in parts.items()}
    return _splits(samples["trainval"], samples["test"], parts["test"].classes, train_tf, val_tf)


# ------------------------------------------------------------------------------- Oxford-IIIT Pet
def pets(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """Oxford-IIIT Pet, 37 breeds: trainval for training, test for testing."""
    from torchvision.datasets import OxfordIIITPet

    root = Path(cfg.DATASET.ROOT)
    if cfg.DATASET.DOWNLOAD:
        download("pets", OxfordIIITPet, root)
    require(root / "oxford-iiit-pet", ("images", "annotations/trainval.txt", "annotations/test.txt"), "pets")
    try:
        parts = {s: OxfordIIITPet(str(root), split=s) for s in ("trainval", "test")}
    except ValueError as e:
        raise LavidError(f"pets: a line of {root / 'oxford-iiit-pet/annotations'} is not "
                         f"'<image> <class id> <species> <breed id>': {e}") from None
    samples = {s: [(str(p), y) for p, y in zip(d._images, d._labels)] for s, d in parts.items()}
    return _splits(samples["trainval"], samples["test"], parts["trainval"].classes, train_tf, val_tf)


# --------------------------------------------------------------------------------- Stanford Cars
def cars(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """Stanford Cars, 196 classes, in the layout torchvision's ``StanfordCars`` reads."""
    from torchvision.datasets import StanfordCars

    root = Path(cfg.DATASET.ROOT)
    if cfg.DATASET.DOWNLOAD:
        download("cars", StanfordCars, root)
    require(root / "stanford_cars", ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat",
                                     "cars_test_annos_withlabels.mat", "cars_train", "cars_test"), "cars")
    parts = {s: StanfordCars(str(root), split=s) for s in ("train", "test")}
    samples = {s: [(p, int(y)) for p, y in d._samples] for s, d in parts.items()}
    return _splits(samples["train"], samples["test"], parts["train"].classes, train_tf, val_tf)


# ------------------------------------------------------------------------------------ Waterbirds
WATERBIRDS_CLASSES = ["landbird", "waterbird"]
WATERBIRDS_GROUPS = ["landbird on land", "landbird on water", "waterbird on land", "waterbird on water"]
_SPLIT_CODES = {"0": "train", "1": "val", "2": "test"}


def waterbirds(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """Waterbirds (Sagawa et al.): ``metadata.csv`` with ``img_filename, y, split, place``.

    Labels are landbird / waterbird; the test batches carry the group ``2*y + place``. The LaViD
    target of an image is the signature row of its CUB species, read from the image's folder name
    (``"001.Black_footed_Albatross/..."``): align a CUB-200 signature to ``signature_classes``."""
    root = Path(cfg.DATASET.ROOT)
    require(root, ("metadata.csv",), "waterbirds")
    path = root / "metadata.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"img_filename", "y", "split", "place"} - set(reader.fieldnames or ())
        if missing:
            raise LavidError(f"{path}: missing column(s) {sorted(missing)}; has {reader.fieldnames}")
        rows = list(reader)
    species: dict[int, str] = {}
    parsed = []
    for n, r in enumerate(rows, 2):
        folder = r["img_filename"].split("/")[0]
        m = re.match(r"^(\d+)\.", folder)
        if m is None or r["split"] not in _SPLIT_CODES or r["y"] not in ("0", "1") or r["place"] not in ("0", "1"):
            raise LavidError(f"{path}:{n}: expected '<NNN.Species>/<file>', y and place in 0/1 and split in "
                             f"0/1/2, got {dict(r)}")
        species[int(m.group(1))] = cub_class_name(folder)
        parsed.append((str(root / r["img_filename"]), int(r["y"]), int(r["place"]), _SPLIT_CODES[r["split"]],
                       int(m.group(1))))
    order = sorted(species)
    row_of = {k: i for i, k in enumerate(order)}
    train, val, test = ([p for p in parsed if p[3] == split] for split in ("train", "val", "test"))

    def evaluated(rows):
        return ImageList([(p, y) for p, y, *_ in rows], WATERBIRDS_CLASSES, val_tf,
                         groups=[2 * y + place for _, y, place, *_ in rows])

    return Splits(ImageList([(p, y) for p, y, *_ in train], WATERBIRDS_CLASSES, train_tf, with_index=True),
                  evaluated(test), list(WATERBIRDS_CLASSES), group_names=list(WATERBIRDS_GROUPS),
                  signature_classes=[species[k] for k in order], signature_rows=[row_of[p[4]] for p in train],
                  select=evaluated(val) if val else None)


# ------------------------------------------------------------------------------- ImageNet groups
IMAGENET_GROUPS = Path(__file__).resolve().parents[1] / "assets" / "imagenet_groups.json"


def _groups_file() -> dict:
    return json.loads(IMAGENET_GROUPS.read_text())


def imagenet_groups() -> dict[str, list[tuple[str, str]]]:
    """Group name -> ``[(wnid, class name), ...]`` from the shipped WordNet-derived membership file
    (``scripts/make_imagenet_groups.py``)."""
    return {g: [(m[0], m[1]) for m in members] for g, members in _groups_file()["groups"].items()}


def imagenet_aliases() -> dict[str, list[str]]:
    """wnid -> the class's other names: its synset's WordNet 3.0 lemmas and the name the paper's
    released group signatures use, so those signatures align although they name 16 classes
    differently (e.g. "duck" for "drake (male duck)", "canoe" for "kayak")."""
    return {m[0]: list(m[2]) for members in _groups_file()["groups"].values() for m in members}


def imagenet_group_classes(group: str, key: str = "DATASET.GROUP") -> tuple[list[str], dict]:
    """An ImageNet group's class names in label (wnid) order, and each class's aliases
    (:func:`imagenet_aliases`): what a group's training run and its signature import both align by."""
    groups = imagenet_groups()
    if group not in groups:
        raise LavidError(f"{key} {group!r} is not an ImageNet group; known: {sorted(groups)}")
    members, aliases = sorted(groups[group]), imagenet_aliases()
    return [n for _, n in members], {n: aliases[w] for w, n in members if aliases.get(w)}


def imagenet_group(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    """ImageNet restricted to one WordNet group (``DATASET.GROUP``); classes in wnid order, named
    by the membership file, so the group's own signature aligns by name (or by one of the class's
    aliases, :func:`imagenet_aliases`).

    ``DATASET.IMAGENET_HEAD full`` (the authors'): the same images with ImageNet's 1000 labels (wnid order,
    the standard class index), so the student has a 1000-way head and a test image counts as right only when
    its class wins over all 1000; LaViD's targets are the group's signature rows, looked up per sample."""
    group = cfg.DATASET.GROUP
    head = getattr(cfg.DATASET, "IMAGENET_HEAD", "group")
    if head not in ("group", "full"):
        raise LavidError(f"DATASET.IMAGENET_HEAD must be 'group' or 'full', got {head!r}")
    classes, class_aliases = imagenet_group_classes(group)
    groups = imagenet_groups()
    members = sorted(groups[group])
    root = Path(cfg.DATASET.ROOT)
    require(root, ("train", "val"), "imagenet_group")
    wnids = [w for w, _ in members]
    for split in ("train", "val"):
        require(root / split, wnids, "imagenet_group")
    train = image_folder_samples(root / "train", wnids)
    val = image_folder_samples(root / "val", wnids)
    if head == "group":
        return _splits(train, val, classes, train_tf, val_tf, class_aliases=class_aliases)
    everything = sorted(m for ms in groups.values() for m in ms)  # ImageNet's 1000, in wnid order
    label = {w: i for i, (w, _) in enumerate(everything)}
    full = [label[w] for w in wnids]  # group position -> ImageNet index
    return _splits([(p, full[k]) for p, k in train], [(p, full[k]) for p, k in val], [n for _, n in everything],
                   train_tf, val_tf, class_aliases=class_aliases, signature_classes=classes,
                   signature_rows=[k for _, k in train])


def demo_birds(cfg, train_tf, val_tf, run_dir=None) -> Splits:
    from .demo_birds import ensure_demo_dataset

    root = Path(cfg.DATASET.ROOT)
    if not (root / "classes.json").is_file():  # a complete copy (any size) is reused as it is
        ensure_demo_dataset(root)
    classes = json.loads((root / "classes.json").read_text())["classes"]
    return _splits(image_folder_samples(root / "train", classes), image_folder_samples(root / "test", classes),
                   classes, train_tf, val_tf)


#: DATASET.TYPE -> builder(cfg, train_transform, val_transform, run_dir=None) -> Splits
DATASETS: dict[str, Callable] = {
    "demo_birds": demo_birds, "cub": cub, "caltech101": caltech101, "flowers": flowers, "aircraft": aircraft,
    "pets": pets, "cars": cars, "waterbirds": waterbirds, "imagenet_group": imagenet_group,
}
