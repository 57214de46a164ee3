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
from ..utils import get_logger
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
    norm = not cfg.DATASET.NORMALIZE_ON_DEVICE
    train_tf = TwoViews(size, norm) if tuple(views) == ("weak", "strong") else train_transform(size, normalize=norm)
    splits = DATASETS[kind](cfg, train_tf, test_transform(size, normalize=norm), run_dir=run_dir)
    draft = decode_size(size) if cfg.DATASET.DRAFT_DECODE else None
    for ds in (splits.train, splits.test):
        if isinstance(ds, ImageList):
            ds.draft_size = draft
    return splits


class GlobalBatchShard(torch.utils.data.Sampler):
    """Rank ``rank``'s share of each global batch of one shared permutation, so that ``world``
    processes together see the batches one process would see (``SOLVER.BATCH_SIZE`` is the global
    batch, as in mdistiller). The permutation comes from ``generator``, seeded alike on every rank;
    it is padded (wrapping around) to a multiple of ``world`` so every rank gets the same number of
    batches, each of ``batch // world`` samples but the last."""

    def __init__(self, n: int, batch: int, world: int, rank: int, generator):
        self.n, self.batch, self.world, self.rank, self.generator = n, batch, world, rank, generator
        self.padded = -(-n // world) * world
        # a last global batch that leaves one image per rank is dropped: BatchNorm cannot train on one
        self.dropped = self.padded % batch if 0 < self.padded % batch < 2 * world else 0

    def __len__(self):
        return (self.padded - self.dropped) // self.world

    def __iter__(self):
        perm = torch.randperm(self.n, generator=self.generator).tolist()
        perm += perm[: self.padded - self.n]
        for start in range(0, self.padded - self.dropped, self.batch):
            chunk = perm[start:start + self.batch]
            share = len(chunk) // self.world
            yield from chunk[self.rank * share:(self.rank + 1) * share]


def eval_loader(cfg, dataset, *, rank: int = 0, world: int = 1):
    """A test or validation loader; under DDP each rank takes every ``world``-th image."""
    if world > 1:
        dataset = torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
    return DataLoader(dataset, batch_size=cfg.DATASET.TEST.BATCH_SIZE, shuffle=False,
                      num_workers=cfg.DATASET.NUM_WORKERS, pin_memory=torch.cuda.is_available(),
                      collate_fn=skip_unreadable)


def sample_ids(splits: Splits, root) -> list[str]:
    """Training samples' ids: image paths relative to ``root`` (``DATASET.ROOT``), ``/``-separated.
    Per-image teacher banks are keyed by them (Stage 1b writes them, training aligns to them)."""
    import os
    from pathlib import Path

    ds = image_list_of(splits.train) if splits is not None else None
    if ds is None:
        raise LavidError("this distiller's teacher is keyed by training image, but the build context has no "
                         "image dataset to take the sample ids from")
    root = os.path.abspath(root)
    return [Path(os.path.relpath(os.path.abspath(p), root)).as_posix() for p, _ in ds.samples]


def cfg_views(splits: Splits) -> tuple:
    """The training views the train split yields: ``("image",)`` or ``("weak", "strong")``."""
    ds = image_list_of(splits.train)
    return ("weak", "strong") if ds is not None and isinstance(ds.transform, TwoViews) else ("image",)


def build_loaders(cfg, splits: Splits, *, rank: int = 0, world: int = 1, generator=None):
    """``(train, test)`` loaders. ``SOLVER.BATCH_SIZE`` is the global batch: each of ``world``
    processes loads ``BATCH_SIZE / world`` images of it."""
    batch = cfg.SOLVER.BATCH_SIZE
    if batch % world:
        raise LavidError(f"SOLVER.BATCH_SIZE {batch} is the global batch and must divide over the {world} "
                         f"processes; use a multiple of {world}")
    sampler = GlobalBatchShard(len(splits.train), batch, world, rank, generator) if world > 1 else None
    if sampler is not None and sampler.dropped and rank == 0:
        get_logger().warning(f"{len(splits.train)} training images in global batches of {batch} over {world} "
                             f"processes leave a last batch of one image per process, which BatchNorm cannot train "
                             f"on: it is left out of each epoch")
    if cfg.DATASET.NUM_WORKERS > 0:  # workers mark unreadable images; the trainer must see their marks
        for ds in (splits.train, splits.test, splits.select):
            if ds is not None and image_list_of(ds) is not None:
                image_list_of(ds).bad.share_memory_()
    drop_last = bool(cfg.DATASET.DROP_LAST)
    if world == 1 and not drop_last and len(splits.train) % batch == 1:
        get_logger().warning(f"{len(splits.train)} training images in batches of {batch} leave a last batch of 1, which "
              f"BatchNorm cannot train on: that image is left out of each epoch (DATASET.DROP_LAST)")
        drop_last = True
    collate = skip_unreadable
    if cfg.DATASET.DECODE_ON_DEVICE:  # the workers read bytes; the trainer decodes and augments on its device
        from .device_decode import collate_encoded

        ds = image_list_of(splits.train)
        if ds is None or tuple(cfg_views(splits)) != ("image",):
            raise LavidError("DATASET.DECODE_ON_DEVICE takes one training view of an image dataset; this run's loader "
                             "yields a (weak, strong) pair (MLKD), whose strong view is augmented on the CPU")
        ds.encoded, collate = True, collate_encoded
    workers = cfg.DATASET.NUM_WORKERS
    # persistent workers would skip the per-epoch reseeding that makes --resume exact: an option
    extra = {"prefetch_factor": 4, "persistent_workers": bool(cfg.DATASET.PERSISTENT_WORKERS)} if workers else {}
    train = DataLoader(splits.train, batch_size=batch // world, shuffle=sampler is None, sampler=sampler,
                       num_workers=workers, drop_last=drop_last, generator=generator,
                       pin_memory=torch.cuda.is_available(), collate_fn=collate, **extra)
    return train, eval_loader(cfg, splits.test, rank=rank, world=world)
