"""Training images decoded and augmented on the training device (``DATASET.DECODE_ON_DEVICE``).

When the CPU cannot decode JPEGs as fast as the GPU trains, the loader workers only read each file's
bytes, and the trainer decodes the batch on the device (``torchvision.io.decode_jpeg``: nvJPEG on
CUDA, batched), then applies the paper's training view there: RandomResizedCrop (scale 0.08-1,
ratio 3/4-4/3, antialiased) and a horizontal flip, per image, then the ImageNet normalisation.
Non-JPEG files (PNG, ...) are decoded on the CPU and moved. The same code runs on the CPU
(``device="cpu"``), which is how it is tested; the crops are drawn from the training process's
torch generator, so a seeded run repeats itself.

One view only (the weak/strong pair of MLKD needs RandAugment on the CPU). An image that cannot be
decoded stops training with its path (the CPU path skips it and counts it instead).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

from ..errors import LavidError
from .transforms import to_model_input

JPEG_MAGIC = (0xFF, 0xD8)
# torchvision 0.29 deprecates its image decoders for TorchCodec's; they work, and would warn on every batch
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
                        category=DeprecationWarning)


class EncodedBatch:
    """A batch of undecoded image files: one flat uint8 tensor and the offsets of each file in it, so a
    loader worker hands the batch over as one shared tensor (not one file descriptor per image)."""

    def __init__(self, flat: torch.Tensor, offsets: torch.Tensor):
        self.flat, self.offsets = flat, offsets

    @classmethod
    def of(cls, files: Sequence[torch.Tensor]) -> "EncodedBatch":
        sizes = torch.tensor([0] + [f.numel() for f in files])
        return cls(torch.cat(list(files)) if files else torch.zeros(0, dtype=torch.uint8), sizes.cumsum(0))

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.flat[int(self.offsets[i]):int(self.offsets[i + 1])]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def pin_memory(self):  # the DataLoader's pin_memory=True calls this
        return EncodedBatch(self.flat.pin_memory(), self.offsets)


def collate_encoded(batch):
    """``(file bytes, target, index[, ...])`` items -> ``(EncodedBatch, targets, indices[, ...])``."""
    from torch.utils.data.dataloader import default_collate

    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    rest = default_collate([b[1:] for b in batch])
    return [EncodedBatch.of([b[0] for b in batch]), *rest]


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """8 bits per channel: a 16-bit PNG decodes to uint16 (its high byte is the 8-bit value)."""
    if img.dtype == torch.uint8:
        return img
    if img.dtype == torch.uint16:
        return (img.to(torch.int32) >> 8).to(torch.uint8)
    raise RuntimeError(f"unsupported decoded image type {img.dtype}")


def is_jpeg(data: torch.Tensor) -> bool:
    return data.numel() > 2 and int(data[0]) == JPEG_MAGIC[0] and int(data[1]) == JPEG_MAGIC[1]


class DeviceDecoder:
    """Decodes an :class:`EncodedBatch` on ``device`` and applies the paper's training view."""

    def __init__(self, size: int, device: str, path_of: Callable[[int], str] | None = None):
        from torchvision.transforms import v2

        self.size, self.device, self.path_of = int(size), torch.device(device), path_of
        self.view = v2.Compose([v2.RandomResizedCrop(self.size, antialias=True), v2.RandomHorizontalFlip()])

    def decode(self, data: Sequence[torch.Tensor], index: torch.Tensor | None = None) -> list[torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

        data = list(data)
        out: list = [None] * len(data)
        jpeg = [i for i, d in enumerate(data) if is_jpeg(d)]
        try:
            if jpeg:
                got = decode_jpeg([data[i] for i in jpeg], mode=ImageReadMode.RGB, device=self.device)
                for i, img in zip(jpeg, got):
                    out[i] = img
            for i, d in enumerate(data):
                if out[i] is None:
                    out[i] = to_uint8(decode_image(d, mode=ImageReadMode.RGB)).to(self.device, non_blocking=True)
        except RuntimeError:
            self._name_the_bad(data, index)
            raise
        return out

    def _name_the_bad(self, data, index) -> None:
        """Find (on the CPU, one by one) which file failed and name it."""
        from torchvision.io import ImageReadMode, decode_image

        for i, d in enumerate(data):
            try:
                decode_image(d, mode=ImageReadMode.RGB)
            except RuntimeError as e:
                where = self.path_of(int(index[i])) if self.path_of is not None and index is not None else f"#{i}"
                raise LavidError(f"DATASET.DECODE_ON_DEVICE: cannot decode training image {where} ({e}); remove it, "
                                 f"or train without DECODE_ON_DEVICE (which skips unreadable images)") from None

    def __call__(self, data: Sequence[torch.Tensor], index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, 3, size, size]`` normalised floats on the device."""
        views = [self.view(img) for img in self.decode(data, index)]
        return to_model_input(torch.stack(views))
