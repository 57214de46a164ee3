"""What the per-image-teacher distillers share: a bank looked up by the batch's sample index.

The bank (a :class:`~lavid_plugin.image_teacher.SampleBank` written by ``lavid teacher ...``) is
read once when the run is built and aligned to the training samples by sample id; inside the step
the teacher is one gather of the batch's rows on the device. No image model runs during training.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..errors import LavidError
from ..teacher_files import TeacherFile
from ._base import Distiller


class SampleTeacherDistiller(Distiller):
    """CE + ``LOSS.FEAT_WEIGHT`` x :meth:`teacher_loss`; subclasses name their config node (``NODE``)
    and the bank tensor they read (:meth:`tensor_name`)."""

    NODE = ""

    def __init__(self, student, teacher, cfg, precomputed=None):
        super().__init__(student, None)
        if precomputed is None:
            raise LavidError(f"{self.NODE} reads a per-image teacher bank: set {self.NODE}.BANK")
        node = cfg[self.NODE]
        self.bank = precomputed.table  # aligned to the training samples; buffers move with .to()
        self.key = self.tensor_name(cfg)
        if self.key not in self.bank.names:
            raise LavidError(f"{node.BANK} ({self.NODE}.BANK) has no tensor {self.key!r}; it has {self.bank.names}"
                             + self.tensor_hint(cfg))
        self.check_bank_tensor(getattr(self.bank, self.key), f"{node.BANK} ({self.NODE}.BANK)")
        self.ce_weight, self.feat_weight = float(node.LOSS.CE_WEIGHT), float(node.LOSS.FEAT_WEIGHT)
        if self.ce_weight < 0 or self.feat_weight < 0:
            raise LavidError(f"{self.NODE}.LOSS weights must be >= 0, got CE_WEIGHT={self.ce_weight}, "
                             f"FEAT_WEIGHT={self.feat_weight}")

    @classmethod
    def needs_teacher(cls, cfg) -> bool:
        return False

    @classmethod
    def precomputed_teacher(cls, cfg):
        return TeacherFile("sample", cfg[cls.NODE].BANK, f"{cls.NODE}.BANK")

    @classmethod
    def tensor_name(cls, cfg) -> str:
        raise NotImplementedError

    @classmethod
    def tensor_hint(cls, cfg) -> str:
        return ""

    def check_bank_tensor(self, values, where: str) -> None:
        """One row per training image of a fixed width (``[N, D]``); subclasses check their values' range."""
        if values.ndim != 2:
            raise LavidError(f"{where}: tensor {self.key!r} has shape {tuple(values.shape)}; {self.NODE} reads one "
                             f"vector per training image, [N, D]")

    def teacher_rows(self, index):
        if index is None:
            raise LavidError(f"{self.NODE} looks its teacher up by training sample: pass the batch's sample "
                             f"indices (forward_train(..., index=index); the plugin's trainer and the bridge do)")
        return self.bank(self.key, index)

    def teacher_loss(self, feats, teacher_rows, **kwargs):
        raise NotImplementedError

    def view_losses(self, outputs, images, target, index=None, **kwargs):
        logits, feats = outputs["image"]
        rows = self.teacher_rows(index)
        return {"loss_ce": self.ce_weight * F.cross_entropy(logits, target),
                "loss_feat": self.feat_weight * self.teacher_loss(feats, rows, index=index, **kwargs)}

    def forward_train(self, image, target, **kwargs):
        return self.run_views({"image": image}, target, **kwargs)


class FeatureBankDistiller(SampleTeacherDistiller):
    """A distiller on ``lavid teacher features``' hidden states: the bank tensor ``<NODE>.TOKEN`` at
    ``<NODE>.LAYER`` (``last-12``, ...), of width :attr:`feature_dim`."""

    BANK_KIND = "features"  # lavid teacher features writes its bank

    @classmethod
    def tensor_name(cls, cfg) -> str:
        from ..image_teacher.bank import feature_name

        token = str(cfg[cls.NODE].TOKEN).lower()
        if token not in ("last", "mean"):
            raise LavidError(f"{cls.NODE}.TOKEN must be 'last' or 'mean', got {cfg[cls.NODE].TOKEN!r}")
        return feature_name(token, cfg[cls.NODE].LAYER)

    @classmethod
    def tensor_hint(cls, cfg) -> str:
        return f" (lavid teacher features --layers {int(cfg[cls.NODE].LAYER)} writes it)"

    @property
    def feature_dim(self) -> int:
        return getattr(self.bank, self.key).shape[1]
