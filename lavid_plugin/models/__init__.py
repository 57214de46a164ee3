"""Students and visual teachers: torchvision architectures with mdistiller's ``(logits, feats)`` contract.

``feats`` holds ``"pooled_feat"`` ([B, D], before the classifier), ``"feats"`` (stem output, then
each stage's output) and ``"preact_feats"`` (the same before each stage's final ReLU, where the
architecture has one). ``get_stage_channels()`` gives one channel count per entry of ``feats``
(stem first) and ``get_bn_before_relu()`` the BN ending each stage after the stem, as mdistiller's
CIFAR models do, so that OFD's ``[1:]`` slices pair each stage's features with its channels
(mdistiller's ImageNet ResNets list 4 channels for 5 feats, which breaks OFD).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from ..errors import LavidError


def _block_with_preact(block, x):
    """torchvision BasicBlock/Bottleneck forward, also returning the sum before the last ReLU."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, tvm.resnet.Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    pre = out + identity
    return F.relu(pre), pre


def _tiny_resnet(num_classes: int, width: int = 8) -> nn.Module:
    """torchvision's ResNet with one BasicBlock per stage at 1/8 of the width (about 80k parameters):
    the same structure, features and hooks as ResNet-18, for tests and smoke runs, not for results."""
    block = tvm.resnet.BasicBlock
    net = tvm.ResNet(block, [1, 1, 1, 1], num_classes=num_classes)
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.layer1 = net._make_layer(block, width, 1)
    net.layer2 = net._make_layer(block, 2 * width, 1, stride=2)
    net.layer3 = net._make_layer(block, 4 * width, 1, stride=2)
    net.layer4 = net._make_layer(block, 8 * width, 1, stride=2)
    net.fc = nn.Linear(8 * width, num_classes)
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class ResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int):
        super().__init__()
        if depth == 0:
            net = _tiny_resnet(num_classes)
        else:
            net = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50}[depth](weights=None, num_classes=num_classes)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.avgpool, self.fc = net.avgpool, net.fc
        self.num_features = net.fc.in_features

    def get_stage_channels(self):
        return [self.bn1.num_features] + [self._out_ch(layer) for layer in (self.layer1, self.layer2, self.layer3,
                                                                            self.layer4)]

    @staticmethod
    def _out_ch(layer):
        last = layer[-1]
        return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features

    def get_bn_before_relu(self):
        return [(layer[-1].bn3 if hasattr(layer[-1], "bn3") else layer[-1].bn2)
                for layer in (self.layer1, self.layer2, self.layer3, self.layer4)]

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats, pre = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer[:-1]:
                x = block(x)
            x, p = _block_with_preact(layer[-1], x)
            feats.append(x)
            pre.append(p)
        pooled = torch.flatten(self.avgpool(x), 1)
        return self.fc(pooled), {"pooled_feat": pooled, "feats": feats, "preact_feats": pre}


class MobileNetV2(nn.Module):
    # indices of torchvision's features[] that end a resolution stage
    STAGE_ENDS = (3, 6, 13, 18)

    def __init__(self, num_classes: int):
        super().__init__()
        net = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
        self.features, self.classifier = net.features, net.classifier
        self.num_features = net.last_channel

    def get_stage_channels(self):
        return [self._channels(self.features[i]) for i in (0,) + self.STAGE_ENDS]

    @staticmethod
    def _channels(m):
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
        return convs[-1].out_channels

    def get_bn_before_relu(self):
        return [[b for b in self.features[i].modules() if isinstance(b, nn.BatchNorm2d)][-1] for i in self.STAGE_ENDS]

    def forward(self, x):
        feats = []
        x = self.features[0](x)
        feats.append(x)
        for i in range(1, len(self.features)):
            x = self.features[i](x)
            if i in self.STAGE_ENDS:
                feats.append(x)
        pooled = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        # inverted residual stages end linearly: pre-activation equals the output
        return self.classifier(pooled), {"pooled_feat": pooled, "feats": feats, "preact_feats": list(feats)}


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        net = tvm.shufflenet_v2_x1_0(weights=None, num_classes=num_classes)
        self.conv1, self.maxpool = net.conv1, net.maxpool
        self.stage2, self.stage3, self.stage4, self.conv5, self.fc = net.stage2, net.stage3, net.stage4, net.conv5, net.fc
        self.num_features = net.fc.in_features

    def get_stage_channels(self):
        return [self.conv1[0].out_channels] + [s[-1].branch2[-3].out_channels * 2 for s in
                                               (self.stage2, self.stage3, self.stage4)] + [self.num_features]

    def get_bn_before_relu(self):
        return [s[-1].branch2[-2] for s in (self.stage2, self.stage3, self.stage4)] + [self.conv5[1]]

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        feats = [x]
        for s in (self.stage2, self.stage3, self.stage4, self.conv5):
            x = s(x)
            feats.append(x)
        pooled = x.mean([2, 3])
        return self.fc(pooled), {"pooled_feat": pooled, "feats": feats, "preact_feats": list(feats)}


#: name -> constructor(num_classes); mdistiller's spellings for the same nets are aliases
model_dict = {
    "resnet18": lambda num_classes: ResNet(18, num_classes),
    "resnet_tiny": lambda num_classes: ResNet(0, num_classes),  # tests and smoke runs
    "resnet34": lambda num_classes: ResNet(34, num_classes),
    "resnet50": lambda num_classes: ResNet(50, num_classes),
    "mobilenetv2": MobileNetV2,
    "shufflenetv2": ShuffleNetV2,
}
from .vit import clip_b16, vit_b16, vit_tiny  # noqa: E402

#: students built with the run's context (``weights``: DISTILLER.STUDENT_CKPT as their starting point,
#: ``class_names``, ``image_size``) instead of loading STUDENT_CKPT over a random init
CONTEXT_MODELS = {"vit_b16": vit_b16, "vit_tiny": vit_tiny, "clip_b16": clip_b16}
model_dict.update(CONTEXT_MODELS)

#: short student names (config file names, report columns) -> model name (``DISTILLER.STUDENT``)
STUDENTS = {"res18": "resnet18", "mv2": "mobilenetv2", "shuv2": "shufflenetv2", "res50": "resnet50",
            "vit_b16": "vit_b16", "vit_b16_authors": "vit_b16", "clip_b16": "clip_b16"}
#: mdistiller's spellings, and the short names
ALIASES = {"ResNet18": "resnet18", "ResNet34": "resnet34", "ResNet50": "resnet50", "MobileNetV2": "mobilenetv2",
           "ShuffleV2": "shufflenetv2", **STUDENTS}


def build_model(name: str, num_classes: int, **context) -> nn.Module:
    """``context`` (``weights``, ``class_names``, ``image_size``) goes to the :data:`CONTEXT_MODELS`;
    the CNNs take the class count alone."""
    key = ALIASES.get(name, name)
    if key not in model_dict:
        raise LavidError(f"unknown model {name!r}; known: {sorted(model_dict)} (aliases {sorted(ALIASES)})")
    if key in CONTEXT_MODELS:
        return model_dict[key](num_classes, **context)
    return model_dict[key](num_classes)


def is_context_model(name: str) -> bool:
    return ALIASES.get(name, name) in CONTEXT_MODELS


def build_student(cfg, class_names, *, pretrained: bool = True) -> nn.Module:
    """The run's student: a CNN from scratch (``DISTILLER.STUDENT_CKPT``, if set, loaded over it), or a
    transformer from its starting weights (ViT: ImageNet; CLIP: the checkpoint folder, its classifier
    from the class names). ``pretrained=False``: no ImageNet weights (a trained checkpoint follows)."""
    name, ckpt = cfg.DISTILLER.STUDENT, cfg.DISTILLER.STUDENT_CKPT
    if is_context_model(name):
        weights = ckpt if pretrained or ALIASES.get(name, name) == "clip_b16" else False
        return build_model(name, len(class_names), weights=weights, class_names=list(class_names),
                           image_size=int(cfg.DATASET.IMAGE_SIZE))
    student = build_model(name, len(class_names))
    if ckpt and pretrained:
        load_weights(student, ckpt, "student")
    return student


def load_weights(model: nn.Module, path: str | Path, what: str = "model") -> nn.Module:
    """Load a checkpoint file (``weights_only=True``): a state dict, or mdistiller's ``{"model": ...}``.

    A ``module.`` prefix (DataParallel) or a distiller's ``student.`` prefix is removed. Missing,
    unexpected or mis-shaped keys give one error that names them.
    """
    path = Path(path)
    if not path.is_file():
        raise LavidError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files; torch's own text would advise weights_only=False
        raise LavidError(f"{path}: cannot load it as a {what} checkpoint: damaged, or it needs code to load "
                         f"({e.__class__.__name__}); only weight files load (torch.load weights_only=True)") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise LavidError(f"{path}: expected a state dict, got {type(state).__name__}")
    for prefix in ("module.", "student."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise LavidError(f"{path}: does not fit the {what} ({type(model).__name__}): " + ", ".join(parts))
    model.load_state_dict(state)
    return model


def pooled_dim(student) -> int:
    """The size of a student's pooled feature (``feats["pooled_feat"]``): what an auxiliary head reads."""
    if hasattr(student, "num_features"):
        return int(student.num_features)
    if hasattr(student, "get_stage_channels"):
        return int(student.get_stage_channels()[-1])
    raise LavidError(f"cannot tell the pooled feature size of {type(student).__name__}")
