"""The paper's transforms: RandomResizedCrop + flip for training, Resize(256/224) + CenterCrop for testing."""

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


def train_transform(size: int, strong: bool = False):
    ops = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    if strong:  # MLKD's strong view: RandAugment(2, 10), as the MLKD paper and the authors (torchvision's default is 9)
        ops.append(T.RandAugment(num_ops=MLKD_RANDAUGMENT[0], magnitude=MLKD_RANDAUGMENT[1]))
    return T.Compose(ops + [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def test_transform(size: int):
    return T.Compose([T.Resize(resize_size(size)), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class TwoViews:
    """``(weak, strong)`` pair of one image, as MLKD's loader yields."""

    def __init__(self, size: int):
        self.weak, self.strong = train_transform(size), train_transform(size, strong=True)

    def __call__(self, img):
        return self.weak(img), self.strong(img)
