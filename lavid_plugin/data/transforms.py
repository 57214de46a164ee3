"""The paper's transforms: RandomResizedCrop + flip for training, Resize(256/224) + CenterCrop for testing.

``normalize=False`` ends them with uint8 tensors instead of normalised floats (``DATASET.NORMALIZE_ON_DEVICE``):
a quarter of the bytes through loader workers and host-to-device copies; :func:`to_model_input`
finishes the job on the device.
"""

import torch
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_size(size: int) -> int:
    """The test-time resize before the centre crop: 256 for 224, in proportion otherwise."""
    return round(size * 256 / 224)


def decode_size(size: int) -> int:
    """Shorter side JPEGs are decoded to (at least) in draft mode: the test resize, so the test view
    loses nothing; a training crop smaller than the whole image is upsampled from it."""
    return resize_size(size)


#: (operations, magnitude) of MLKD's strong view
MLKD_RANDAUGMENT = (2, 10)


def _to_tensor(normalize: bool) -> list:
    return [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)] if normalize else [T.PILToTensor()]


def to_model_input(x: torch.Tensor) -> torch.Tensor:
    """A uint8 image batch (``normalize=False`` transforms) as the normalised floats the model takes,
    computed where ``x`` is; anything else is returned as it is."""
    if x.dtype != torch.uint8:
        return x
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, -1, 1, 1) * 255
    return (x.float() - mean) / std


def train_transform(size: int, strong: bool = False, normalize: bool = True):
    ops = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    if strong:  # MLKD's strong view: RandAugment(2, 10), as the MLKD paper and the authors (torchvision's default is 9)
        ops.append(T.RandAugment(num_ops=MLKD_RANDAUGMENT[0], magnitude=MLKD_RANDAUGMENT[1]))
    return T.Compose(ops + _to_tensor(normalize))


def test_transform(size: int, normalize: bool = True):
    return T.Compose([T.Resize(resize_size(size)), T.CenterCrop(size)] + _to_tensor(normalize))


class TwoViews:
    """``(weak, strong)`` pair of one image, as MLKD's loader yields."""

    def __init__(self, size: int, normalize: bool = True):
        self.weak = train_transform(size, normalize=normalize)
        self.strong = train_transform(size, strong=True, normalize=normalize)

    def __call__(self, img):
        return self.weak(img), self.strong(img)
