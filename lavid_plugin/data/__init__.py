"""Datasets and loaders with mdistiller's contract.

:func:`build_splits` reads a dataset, :func:`build_loaders` makes its loaders (the run's set-up
around them is :func:`lavid_plugin.engine.build.setup_data`). The train loader yields
``(image, target, index)`` (``image`` a ``(weak, strong)`` pair when the distiller wants two views),
the validation loader ``(image, target)``, or ``(image, target, group)`` for datasets with groups
(Waterbirds). Dataset types register in ``DATASETS`` (see :mod:`.datasets`).

Images, unreadable-image handling and :class:`Splits` live in :mod:`.images`.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ..errors import LavidError
from .images import (IMAGE_SUFFIXES, ImageList, Splits, check_bad_images, image_folder_samples,  # noqa: F401
                     image_list_of, skip_unreadable)
from .transforms import TwoViews, decode_size, test_transform, train_transform


def build_splits(cfg, views=("image",), run_dir=None) -> Splits:
    """The dataset named by ``DATASET.TYPE`` with the paper's transforms; ``run_dir`` is where a
    dataset that draws its own split (Caltech-101) saves it for reuse."""
    from .datasets import DATASETS

    kind = cfg.DATASET.TYPE
    if kind not in DATASETS:
        raise LavidError(f"unknown DATASET.TYPE {kind!r}; the plugin knows {sorted(DATASETS)}")
    size = cfg.DATASET.IMAGE_SIZE
    train_tf = TwoViews(size) if tuple(views) == ("weak", "strong") else train_transform(size)
    splits = DATASETS[kind](cfg, train_tf, test_transform(size), run_dir=run_dir)
    draft = decode_size(size) if cfg.DATASET.DRAFT_DECODE else None
    for ds in (splits.train, splits.val):
        if isinstance(ds, ImageList):
            ds.draft_size = draft
    return splits


def build_loaders(cfg, splits: Splits, *, rank: int = 0, world: int = 1, generator=None):
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(splits.train, world, rank, shuffle=True, seed=max(cfg.EXPERIMENT.SEED, 0)) \
        if world > 1 else None
    if cfg.DATASET.NUM_WORKERS > 0:  # workers mark unreadable images; the trainer must see their marks
        for ds in (splits.train, splits.val):
            if image_list_of(ds) is not None:
                image_list_of(ds).bad.share_memory_()
    train = DataLoader(splits.train, batch_size=cfg.SOLVER.BATCH_SIZE, shuffle=sampler is None, sampler=sampler,
                       num_workers=cfg.DATASET.NUM_WORKERS, drop_last=False, generator=generator,
                       pin_memory=torch.cuda.is_available(), collate_fn=skip_unreadable)
    val_set = splits.val if world == 1 else torch.utils.data.Subset(splits.val, range(rank, len(splits.val), world))
    val = DataLoader(val_set, batch_size=cfg.DATASET.TEST.BATCH_SIZE, shuffle=False,
                     num_workers=cfg.DATASET.NUM_WORKERS, pin_memory=torch.cuda.is_available(),
                     collate_fn=skip_unreadable)
    return train, val
