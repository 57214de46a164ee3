"""Image lists with mdistiller's batch contract, unreadable-image handling, and what a dataset builder returns.

Unreadable images: a sample whose file cannot be decoded is reported once by path on stderr and
dropped from its batch; the epoch goes on. The trainer counts them (``bad_images`` in the worklog)
and stops with an error listing them once more than ``DATASET.MAX_BAD_FRACTION`` of a split failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torch.utils.data.dataloader import default_collate

from ..errors import LavidError
from ..utils import get_logger

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageList(Dataset):
    """``(path, label)`` samples decoded with PIL.

    ``with_index`` adds the sample index (mdistiller's train batches); ``groups`` (one int per
    sample) adds the group to each item instead (Waterbirds' test batches). ``draft_size``: JPEGs are
    decoded at the smallest power-of-two reduction whose shorter side is still >= ``draft_size``
    (PIL draft mode), which skips most of the IDCT work for sources much larger than the crop.
    """

    def __init__(self, samples, classes, transform=None, with_index=False, groups=None, draft_size=None):
        self.samples, self.classes = list(samples), list(classes)
        self.targets = [t for _, t in self.samples]
        self.transform, self.with_index = transform, with_index
        self.groups = None if groups is None else list(groups)
        self.draft_size = draft_size
        self.encoded = False  # DATASET.DECODE_ON_DEVICE (train split): items are the files' bytes, undecoded
        # one flag per sample; build_loaders moves it to shared memory when workers will write to it
        self.bad = torch.zeros(max(len(self.samples), 1), dtype=torch.uint8)

    def __len__(self):
        return len(self.samples)

    def load(self, i):
        from PIL import Image

        with Image.open(self.samples[i][0]) as im:
            if self.draft_size and im.format == "JPEG":
                im.draft("RGB", (self.draft_size, self.draft_size))
            return im.convert("RGB")

    def __getitem__(self, i):
        if self.encoded:  # DATASET.DECODE_ON_DEVICE: the file's bytes, decoded by the trainer
            return self.read_bytes(i), self.targets[i], i
        try:
            img = self.load(i)
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            if not self.bad[i]:
                get_logger().warning(f"skipping unreadable image {self.samples[i][0]}: {type(e).__name__}: {e}")
            self.bad[i] = 1
            return None
        if self.transform is not None:
            img = self.transform(img)
        target = self.targets[i]
        if self.groups is not None:
            return img, target, self.groups[i]
        return (img, target, i) if self.with_index else (img, target)

    def read_bytes(self, i):
        from torchvision.io import read_file

        try:
            return read_file(self.samples[i][0])
        except RuntimeError as e:
            raise LavidError(f"cannot read training image {self.samples[i][0]}: {e}") from None

    def bad_paths(self) -> list[str]:
        return [self.samples[i][0] for i in torch.nonzero(self.bad[:len(self.samples)]).flatten().tolist()]


def image_list_of(dataset):
    """The :class:`ImageList` under a ``Subset`` (DDP's validation shards) or another wrapper
    (CRD's contrastive sampling), or None."""
    while not isinstance(dataset, ImageList) and "dataset" in vars(dataset):
        dataset = dataset.dataset
    return dataset if isinstance(dataset, ImageList) else None


def check_bad_images(dataset, max_fraction: float, split: str) -> int:
    """Number of unreadable images met so far; a clear error once more than ``max_fraction`` failed."""
    ds = image_list_of(dataset)
    if ds is None:
        return 0
    n = int(ds.bad[:len(ds)].sum())
    if n and n > max_fraction * len(ds):
        paths = ds.bad_paths()
        shown = "\n  ".join(paths[:10]) + ("\n  ..." if len(paths) > 10 else "")
        raise LavidError(f"{n} of {len(ds)} {split} images could not be read (more than DATASET.MAX_BAD_FRACTION="
                         f"{max_fraction}):\n  {shown}")
    return n


def skip_unreadable(batch):
    """``default_collate`` without the samples that failed to load (None); None if all failed."""
    batch = [b for b in batch if b is not None]
    return default_collate(batch) if batch else None


def image_folder_samples(root: Path, classes: list[str]):
    if not root.is_dir():
        raise LavidError(f"missing folder {root} (expected ROOT/<split>/<class name>/<image>)")
    samples = []
    for k, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise LavidError(f"missing class folder {folder}")
        samples += [(str(p), k) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return samples


@dataclass
class Splits:
    """What a dataset builder returns.

    ``signature_classes``/``signature_rows``: when the LaViD target is not the label's own signature
    row (Waterbirds: 2 labels, targets from the 200 CUB species), the names the signature is aligned
    to and, per training sample, the row to use. ``group_names``: names of the validation groups.
    """
    train: Dataset
    test: Dataset  # what mdistiller calls the validation loader: the test split the tables report
    classes: list
    group_names: list | None = None
    signature_classes: list | None = None
    signature_rows: list | None = field(default=None, repr=False)
    #: class name -> other names a per-class teacher may use for it (ImageNet: WordNet lemmas, CLIP-style names)
    class_aliases: dict | None = field(default=None, repr=False)
    #: a validation split for checkpoint selection (Waterbirds' split 1); None: the test split serves
    select: Dataset | None = field(default=None, repr=False)

    @property
    def val(self) -> Dataset:
        """Deprecated name of :attr:`test`."""
        return self.test
