"""``lavid gradcam``: Grad-CAM of trained students side by side (the paper's Fig. 3), with the ``grad-cam`` package.

    lavid gradcam --cfg A.yaml --ckpt A/student_best --cfg B.yaml --ckpt B/student_best -o cams.png [--images ...]

Rows are images, columns the input and each model's class-activation map for the image's true class.
The target layer is chosen per student family: the last residual stage (ResNet), the last feature
block (MobileNetV2), ``conv5`` (ShuffleNetV2), or the last transformer block's first norm with its
tokens laid back on the patch grid (ViT, CLIP). Default images: the first test images of
Waterbirds' "waterbird on land" group (a spurious background: the worst group in the paper), or
elsewhere one test image per class.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import LavidError
from .utils import check_output_path

WORST_GROUP = "waterbird on land"


def require_gradcam():
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        raise LavidError("lavid gradcam needs the grad-cam package: pip install 'lavid-plugin[viz]'") from None


class _Logits(nn.Module):
    """The student's logits. A plugin ResNet runs its stages as modules here (its own forward calls the
    last block as a function, to read the pre-activation, and module hooks would not see it)."""

    def __init__(self, student):
        super().__init__()
        self.student = student

    def forward(self, x):
        from .models import ResNet

        s = self.student
        if isinstance(s, ResNet):
            x = s.layer4(s.layer3(s.layer2(s.layer1(s.maxpool(s.relu(s.bn1(s.conv1(x))))))))
            return s.fc(torch.flatten(s.avgpool(x), 1))
        return s(x)[0]


def target_layer(student):
    """``(layer, reshape_transform)`` for Grad-CAM on this student."""
    if hasattr(student, "cam_layer"):  # ViT / CLIP: tokens [B, 1 + g*g, C] -> [B, C, g, g]
        def tokens_to_grid(t):
            n = t.shape[1] - 1
            g = int(round(n ** 0.5))
            return t[:, 1:1 + g * g].reshape(t.shape[0], g, g, t.shape[2]).permute(0, 3, 1, 2)

        return student.cam_layer(), tokens_to_grid
    for attr in ("layer4", "features", "conv5"):
        if hasattr(student, attr):
            return getattr(student, attr)[-1], None
    raise LavidError(f"no Grad-CAM target layer known for {type(student).__name__}")


def cams(student, images: torch.Tensor, targets: Sequence[int]) -> np.ndarray:
    """``[N, H, W]`` maps in [0, 1] at the input's size, for class ``targets[i]`` of image ``i``."""
    require_gradcam()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer, reshape = target_layer(student)
    model = _Logits(student).eval()
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        out = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    return np.clip(out, 0.0, 1.0)


def default_images(splits, n: int) -> list[int]:
    """Indices into the test split: Waterbirds' worst group, else one image per class."""
    test = splits.test
    groups = getattr(test, "groups", None)
    if groups is not None and splits.group_names and WORST_GROUP in splits.group_names:
        g = splits.group_names.index(WORST_GROUP)
        return [i for i, x in enumerate(groups) if x == g][:n]
    seen, out = set(), []
    for i, t in enumerate(test.targets):
        if t not in seen:
            seen.add(t)
            out.append(i)
    return out[:n]


def load_student(cfg_path: str, ckpt: str, opts: Sequence[str]):
    from .config import load_cfg
    from .data import build_splits
    from .models import build_student, load_weights

    cfg = load_cfg(cfg_path, list(opts))
    splits = build_splits(cfg)
    student = load_weights(build_student(cfg, splits.classes, pretrained=False), ckpt, "student")
    return cfg, splits, student.eval()


def predictions(student, images: torch.Tensor, class_names: Sequence[str]) -> list[str]:
    """Per image: ``"<predicted class> (<probability>)"``."""
    with torch.no_grad():
        prob = torch.softmax(_Logits(student).eval()(images), dim=1)
    p, k = prob.max(1)
    from .plots import wrap

    return [f"predicted (p = {float(v):.2f}):\n" + wrap(class_names[int(c)], 30) for c, v in zip(k, p)]


def grid_png(path, inputs: np.ndarray, maps: list[np.ndarray], labels: Sequence[str], titles: Sequence[str],
             preds: Sequence[Sequence[str]] | None = None) -> Path:
    """Rows = images (their file and true class); columns = the input, then each model's CAM over it,
    captioned with that model's predicted class and its probability; one colour bar for the CAMs."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from .plots import MIN_FONT, pyplot, save_png, shorten

    plt = pyplot()
    n, cols = len(inputs), 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.5 * cols + 1.0, 2.8 * n + 0.5), squeeze=False)
    fig.subplots_adjust(left=0.12, right=0.86, top=1 - 0.75 / (2.8 * n + 0.5), hspace=0.5, wspace=0.08)
    for i in range(n):
        axes[i][0].imshow(inputs[i])
        axes[i][0].set_ylabel(titles[i], fontsize=MIN_FONT)
        for j, m in enumerate(maps, start=1):
            axes[i][j].imshow(show_cam_on_image(inputs[i], m[i], use_rgb=True))
            if preds is not None:
                axes[i][j].set_xlabel(preds[j - 1][i], fontsize=MIN_FONT)
        for j in range(cols):
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
            if i == 0:
                axes[i][j].set_title(shorten(["input", *labels][j], 30), fontsize=9)
    top = axes[0][-1].get_position()
    cax = fig.add_axes([0.89, max(top.y1 - 0.35, 0.05), 0.018, min(0.35, top.y1 - 0.05)])
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1)), cax=cax)
    bar.set_label("Grad-CAM for the true class\n(0: none, 1: strongest)", fontsize=MIN_FONT)
    bar.ax.tick_params(labelsize=MIN_FONT)
    fig.suptitle("Grad-CAM: where each model looks for the image's true class", fontsize=10)
    return save_png(fig, path, dpi=90, tight=False)


def run(args) -> int:
    from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, test_transform
    from .plots import shorten, wrap

    require_gradcam()
    if not args.cfg or len(args.cfg) != len(args.ckpt):
        raise LavidError("give one --ckpt per --cfg (at least one pair)")
    if args.label and len(args.label) != len(args.cfg):
        raise LavidError(f"give one --label per --cfg: {len(args.label)} label(s) for {len(args.cfg)} model(s)")
    if args.num < 1 and not args.images:
        raise LavidError(f"-n must be at least 1, got {args.num}")
    check_output_path(args.output)
    models = [load_student(c, k, args.opts) for c, k in zip(args.cfg, args.ckpt)]
    cfg, splits, _ = models[0]
    test = splits.test
    paths = [p for p, _ in test.samples]
    if args.images:
        where = {str(Path(p).resolve()): i for i, p in enumerate(paths)}
        missing = [p for p in args.images if str(Path(p).resolve()) not in where]
        if missing:
            raise LavidError(f"image(s) {missing} are not in the test split of {args.cfg[0]}: their true class is unknown")
        idx = [where[str(Path(p).resolve())] for p in args.images]
    else:
        idx = default_images(splits, args.num)
    tf = test_transform(int(cfg.DATASET.IMAGE_SIZE))
    x = torch.stack([tf(test.load(i)) for i in idx])
    targets = [test.targets[i] for i in idx]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    shown = (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float32)
    maps = [cams(student, x, targets) for _, _, student in models]
    labels = args.label or [m[0].EXPERIMENT.NAME or Path(c).stem for c, m in zip(args.cfg, models)]
    titles = [f"{shorten(Path(paths[i]).name, 28)}\n" + wrap(f"true: {splits.classes[t]}", 28) for i, t in zip(idx, targets)]
    preds = [predictions(student, x, splits.classes) for _, _, student in models]
    out = grid_png(args.output, shown, maps, labels, titles, preds)
    print(f"wrote {out}: {len(idx)} images x {len(models)} models")
    return 0


def add_parser(sub) -> None:
    g = sub.add_parser("gradcam", help="Grad-CAM of trained students side by side (Fig. 3)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split("\n\n")[0])
    g.add_argument("--cfg", action="append", required=True, help="a model's training config (repeat per model)")
    g.add_argument("--ckpt", action="append", required=True, help="its student checkpoint (student_best, ...)")
    g.add_argument("--label", action="append", help="its column title (default: EXPERIMENT.NAME)")
    g.add_argument("--images", nargs="+", help="test images (default: Waterbirds' worst group, else one per class)")
    g.add_argument("-n", "--num", type=int, default=4, help="how many default images")
    g.add_argument("-o", "--output", default="gradcam.png")
    g.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE", help="config overrides for every --cfg")
    g.set_defaults(func=run)
