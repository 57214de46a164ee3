"""A per-sample teacher bank: tensors with one row per training image, keyed by sample id.

The per-image counterpart of :class:`~lavid_plugin.signature.LLMSignature`: a file (safetensors
tensors + JSON metadata with provenance and a content hash; loading unpickles nothing), aligned to a
dataset **by sample id** (the image's path relative to ``DATASET.ROOT``, ``/``-separated), never by
position, and looked up inside the training step by the batch's sample ``index``::

    bank = SampleBank.load("cub_llava_l12.safetensors").align(ctx.sample_ids)
    feats = bank("feature", index)          # [B, D], rows of the batch's images

A missing or extra image is an error that names it; a non-finite value is an error that names the
tensor and the image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import LavidError
from ..utils import load_tensor_file, save_tensor_file

FORMAT = "lavid-sample-bank"
FORMAT_VERSION = 1


def feature_name(token: str, layer: int) -> str:
    """The bank tensor ``lavid teacher features`` writes for a token (``last``/``mean``) and a layer:
    ``last-12``, ``mean-1``, ..."""
    return f"{token}{int(layer)}"


def _first(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(map(repr, names[:n])) + (f" and {len(names) - n} more" if len(names) > n else "")


class SampleBank(nn.Module):
    ddp_local = True  # the same on every rank: DDP need not broadcast its buffers

    def __init__(self, sample_ids: Sequence[str], tensors: dict[str, torch.Tensor], *, provenance: dict | None = None,
                 source: str = "sample bank"):
        super().__init__()
        ids = [str(s) for s in sample_ids]
        seen: dict[str, int] = {}
        for i, s in enumerate(ids):
            if s in seen:
                raise LavidError(f"{source}: sample id {s!r} appears twice (rows {seen[s]} and {i})")
            seen[s] = i
        if not tensors:
            raise LavidError(f"{source}: a sample bank needs at least one tensor")
        for name, t in tensors.items():
            if t.ndim < 1 or t.shape[0] != len(ids):
                raise LavidError(f"{source}: tensor {name!r} has shape {tuple(t.shape)}; expected {len(ids)} rows "
                                 f"(one per sample id)")
            if t.is_floating_point():
                bad = (~torch.isfinite(t)).reshape(len(ids), -1).any(1) if len(ids) else torch.zeros(0, dtype=bool)
                if bad.any():
                    raise LavidError(f"{source}: tensor {name!r} has non-finite values for sample "
                                     f"{ids[int(bad.nonzero()[0])]!r}")
            self.register_buffer(name, t, persistent=False)
        self.sample_ids, self.names = ids, list(tensors)
        self.provenance = dict(provenance or {})

    def __len__(self) -> int:
        return len(self.sample_ids)

    def forward(self, name: str, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` (the batch's sample indices) of tensor ``name``."""
        return getattr(self, name)[index]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, n) for n in self.names}

    # ------------------------------------------------------------------ alignment
    def align(self, dataset_sample_ids: Sequence[str], *, allow_extra: bool = False) -> "SampleBank":
        """Rows reordered to the dataset's samples, by sample id. A dataset image the bank lacks is an
        error naming the first ones; so is a bank image the dataset lacks, unless ``allow_extra``."""
        row = {s: i for i, s in enumerate(self.sample_ids)}
        missing = [s for s in dataset_sample_ids if s not in row]
        if missing:
            raise LavidError(f"the bank has no row for {len(missing)} of the dataset's {len(dataset_sample_ids)} "
                             f"images, first {_first(missing)} (a bank of another split or dataset?)")
        if not allow_extra and len(row) != len(dataset_sample_ids):
            wanted = set(dataset_sample_ids)
            extra = [s for s in self.sample_ids if s not in wanted]
            raise LavidError(f"the bank has {len(extra)} image(s) the dataset lacks, first {_first(extra)}")
        idx = torch.tensor([row[s] for s in dataset_sample_ids], dtype=torch.long)
        return SampleBank(dataset_sample_ids, {n: t[idx] for n, t in self.tensors().items()},
                          provenance=self.provenance)

    # ------------------------------------------------------------------ io
    def content_hash(self) -> str:
        h = hashlib.sha256(json.dumps({"ids": self.sample_ids, "names": self.names}).encode())
        for n in self.names:
            t = getattr(self, n).contiguous().cpu()
            h.update(f"{n}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "sample_ids": self.sample_ids,
                "provenance": {**self.provenance, "content_hash": self.content_hash()}}
        return save_tensor_file(path, self.tensors(), meta)

    @classmethod
    def load(cls, path: str | Path) -> "SampleBank":
        tensors, meta = load_tensor_file(path, "sample bank")
        if meta.get("format") != FORMAT or not isinstance(meta.get("sample_ids"), list):
            raise LavidError(f"{path}: not a LaViD sample bank (no '{FORMAT}' metadata with sample_ids)")
        return cls(meta["sample_ids"], tensors, provenance=meta.get("provenance", {}), source=str(path))
