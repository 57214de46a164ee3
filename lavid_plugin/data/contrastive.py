"""CRD's training set: each item also carries the indices of its positive and ``k`` negatives."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LavidError
from ..utils import get_logger


class ContrastiveSampling(torch.utils.data.Dataset):
    """``(image, target, index, contrastive_index)``: the positive (the sample itself in ``exact``
    mode, a random same-class sample in ``relax``) then ``k`` random other-class indices."""

    def __init__(self, dataset, k: int, mode: str = "exact"):
        if mode not in ("exact", "relax"):
            raise LavidError(f"CRD.MODE must be 'exact' or 'relax', got {mode!r}")
        self.dataset, self.k, self.mode = dataset, int(k), mode
        targets = np.asarray(dataset.targets)
        classes = np.unique(targets)
        self.positive = {c: np.flatnonzero(targets == c) for c in classes}
        self.negative = {c: np.flatnonzero(targets != c) for c in classes}
        fewest = min((len(v) for v in self.negative.values()), default=0)
        if self.k > fewest:  # as the authors' and mdistiller's samplers do: drawn with replacement
            get_logger().warning(f"NCE.K {self.k} negatives per sample, but {len(targets)} training images leave only "
                                 f"{fewest} of another class for some: negatives repeat (a smaller NCE.K avoids it)")
        self.targets = dataset.targets

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # classes, samples, bad, ... of the wrapped ImageList
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, i):
        item = self.dataset[i]
        if item is None:
            return None
        img, target, index = item
        pos = index if self.mode == "exact" else int(np.random.choice(self.positive[target]))
        neg = self.negative[target]
        neg_idx = np.random.choice(neg, self.k, replace=self.k > len(neg))
        return img, target, index, np.hstack(([pos], neg_idx))
