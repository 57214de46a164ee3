"""mdistiller's distiller contract: ``forward_train(image, target, **kwargs) -> (logits, losses)``.

Two-view distillers (MLKD) take ``image_weak=``/``image_strong=``; a trainer that passes one tensor
(mdistiller's ``BaseTrainer``, through the bridge) may pack the pair as ``image`` of shape
``[B, 2, C, H, W]``, which ``forward`` unpacks.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .registry import register


def normalize(logit):
    """Logit standardization (Sun et al., CVPR 2024): z-score each row. ``std`` is unbiased, as in the fork."""
    mean = logit.mean(dim=-1, keepdim=True)
    stdv = logit.std(dim=-1, keepdim=True)
    return (logit - mean) / (1e-7 + stdv)


class Distiller(nn.Module):
    """Base class: the teacher stays in eval mode; extra heads go in ``get_learnable_parameters``.

    A subclass is the one declaration of its method: ``@register("NAME")`` puts it in
    ``distiller_dict``; ``NODE`` and ``DEFAULTS`` are its config node and that node's defaults
    (merged into the config schema, :func:`lavid_plugin.config.get_cfg_defaults`); the class methods
    below say what the loader, the trainer, the launcher and the bridge must give it."""

    #: the config node the method owns (``CFG.<NODE>``), or None
    NODE: str | None = None
    #: that node's defaults: a nested dict of UPPER_SNAKE keys
    DEFAULTS: dict = {}
    #: deprecated keys of the node still accepted (with a warning): ``{"OLD.KEY": "NEW.KEY"}`` under ``NODE``
    RENAMED_KEYS: dict = {}

    def __init__(self, student, teacher):
        super().__init__()
        self.student = student
        self.teacher = teacher

    # -- registry hooks (see lavid_plugin.distillers)
    @classmethod
    def needs_teacher(cls, cfg) -> bool:
        return True

    @classmethod
    def check_cfg(cls, cfg) -> None:
        """Refuse a bad value of the method's config (a :class:`~lavid_plugin.errors.LavidError`
        naming the key) before anything is built or written."""

    @classmethod
    def needs_sample_index(cls, cfg) -> bool:
        """Whether ``forward_train`` needs the batch's sample ``index=`` (a per-sample teacher):
        mdistiller's own trainers do not pass it, the bridge's ``sample`` trainer does."""
        spec = cls.precomputed_teacher(cfg)
        return spec is not None and spec.per == "sample"

    @classmethod
    def views_for(cls, cfg) -> tuple:
        return ("image",)

    @classmethod
    def wrap_train_set(cls, cfg, dataset):
        """The training set as this distiller's loader needs it (CRD: contrastive indices)."""
        return dataset

    @classmethod
    def precomputed_teacher(cls, cfg):
        """The precomputed teacher file this distiller reads (a
        :class:`~lavid_plugin.teacher_files.TeacherFile`: per class or per sample), or None."""
        return None

    @classmethod
    def build(cls, student, teacher, cfg, ctx):
        """The distiller for a run; ``ctx`` (:class:`~lavid_plugin.engine.build.BuildContext`) loads
        and aligns the precomputed teacher, which ``__init__`` receives as ``precomputed=``."""
        spec = cls.precomputed_teacher(cfg)
        if spec is None:
            return cls(student, teacher, cfg)
        return cls(student, teacher, cfg, precomputed=ctx.load_teacher(spec))

    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def get_learnable_parameters(self):
        return [v for _, v in self.student.named_parameters()]

    def get_extra_parameters(self):
        return 0

    def forward_train(self, **kwargs):
        raise NotImplementedError

    def view_losses(self, outputs, images, target, **kwargs):
        """Losses from the student's outputs, one ``(logits, feats)`` per view (``"image"``, or
        ``"weak"``/``"strong"``). Splitting this from the forward pass lets LaViD add its term to any
        base distiller while the student runs once per view."""
        raise NotImplementedError

    def run_views(self, images, target, **kwargs):
        outputs = {v: self.student(x) for v, x in images.items()}
        first = next(iter(outputs.values()))
        return first[0], self.view_losses(outputs, images, target, **kwargs)

    def forward_test(self, image):
        return self.student(image)[0]

    def forward(self, **kwargs):
        if not self.training:
            return self.forward_test(kwargs["image"])
        image = kwargs.get("image")
        if image is not None and image.ndim == 5:  # a (weak, strong) pair packed as [B, 2, C, H, W]
            kwargs["image_weak"], kwargs["image_strong"] = kwargs.pop("image").unbind(1)
        return self.forward_train(**kwargs)


@register("NONE")
class Vanilla(Distiller):
    """Plain cross-entropy training (mdistiller's ``NONE``)."""

    def __init__(self, student, teacher=None, cfg=None):
        super().__init__(student, None)

    @classmethod
    def needs_teacher(cls, cfg) -> bool:
        return False

    def view_losses(self, outputs, images, target, **kwargs):
        return {"ce": F.cross_entropy(outputs["image"][0], target)}

    def forward_train(self, image, target, **kwargs):
        return self.run_views({"image": image}, target, **kwargs)
