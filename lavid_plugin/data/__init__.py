"""Datasets and loaders with mdistiller's contract.

``get_dataset(cfg) -> (train_loader, val_loader, num_data, num_classes)``; the train loader yields
``(image, target, index)`` (``image`` a ``(weak, strong)`` pair when the distiller wants two views),
the validation loader ``(image, target)``. Dataset types register in ``DATASETS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import LavidError
from .transforms import TwoViews, test_transform, train_transform


class ImageList(Dataset):
    """``(path, label)`` samples; ``with_index`` adds the sample index (mdistiller's train batches)."""

    def __init__(self, samples, classes, transform=None, with_index=False):
        self.samples, self.classes = list(samples), list(classes)
        self.targets = [t for _, t in self.samples]
        self.transform, self.with_index = transform, with_index

    def __len__(self):
        return len(self.samples)

    def load(self, i):
        from PIL import Image

        path, _ = self.samples[i]
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as e:
            raise LavidError(f"cannot read image {path}: {e}") from None

    def __getitem__(self, i):
        img = self.load(i)
        if self.transform is not None:
            img = self.transform(img)
        target = self.targets[i]
        return (img, target, i) if self.with_index else (img, target)


def image_folder_samples(root: Path, classes: list[str]):
    if not root.is_dir():
        raise LavidError(f"missing folder {root} (expected ROOT/<split>/<class name>/<image>)")
    samples = []
    for k, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise LavidError(f"missing class folder {folder}")
        samples += [(str(p), k) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    return samples


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    classes: list


def _demo_birds(cfg, train_tf, val_tf) -> Splits:
    import json

    from .demo_birds import ensure_demo_dataset

    root = Path(cfg.DATASET.ROOT)
    if not (root / "classes.json").is_file():  # a complete copy (any size) is reused as it is
        ensure_demo_dataset(root)
    sig = Path(cfg.LAVID.SIGNATURE) if cfg.LAVID.SIGNATURE else None
    if sig is not None and sig.resolve() == (root / "signature.safetensors").resolve():
        from .demo_birds import ensure_demo_signature

        ensure_demo_signature(root)
    classes = json.loads((root / "classes.json").read_text())["classes"]
    train = ImageList(image_folder_samples(root / "train", classes), classes, train_tf, with_index=True)
    val = ImageList(image_folder_samples(root / "test", classes), classes, val_tf)
    return Splits(train, val, classes)


#: DATASET.TYPE -> builder(cfg, train_transform, val_transform) -> Splits
DATASETS: dict[str, Callable] = {"demo_birds": _demo_birds}


def build_splits(cfg, views=("image",)) -> Splits:
    kind = cfg.DATASET.TYPE
    if kind not in DATASETS:
        raise LavidError(f"unknown DATASET.TYPE {kind!r}; the plugin knows {sorted(DATASETS)}")
    size = cfg.DATASET.IMAGE_SIZE
    train_tf = TwoViews(size) if tuple(views) == ("weak", "strong") else train_transform(size)
    return DATASETS[kind](cfg, train_tf, test_transform(size))


def build_loaders(cfg, splits: Splits, *, rank: int = 0, world: int = 1, generator=None):
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(splits.train, world, rank, shuffle=True, seed=max(cfg.EXPERIMENT.SEED, 0)) \
        if world > 1 else None
    train = DataLoader(splits.train, batch_size=cfg.SOLVER.BATCH_SIZE, shuffle=sampler is None, sampler=sampler,
                       num_workers=cfg.DATASET.NUM_WORKERS, drop_last=False, generator=generator,
                       pin_memory=torch.cuda.is_available(), persistent_workers=False)
    val_set = splits.val if world == 1 else torch.utils.data.Subset(splits.val, range(rank, len(splits.val), world))
    val = DataLoader(val_set, batch_size=cfg.DATASET.TEST.BATCH_SIZE, shuffle=False,
                     num_workers=cfg.DATASET.NUM_WORKERS, pin_memory=torch.cuda.is_available())
    return train, val


def get_dataset(cfg, views=None):
    """mdistiller's entry point: ``(train_loader, val_loader, num_data, num_classes)``."""
    from ..distillers import distiller_dict

    if views is None:
        views = distiller_dict[cfg.DISTILLER.TYPE].views_for(cfg)
    splits = build_splits(cfg, views)
    train, val = build_loaders(cfg, splits)
    return train, val, len(splits.train), len(splits.classes)
