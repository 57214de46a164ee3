"""MaKD (multi-aspect knowledge distillation): the student also predicts an MLLM's answers to aspect questions.

Per training image the bank holds ``p_yes`` ``[A]``: P(Yes) of a vision-language model asked A
yes/no aspect questions about that image (``lavid teacher aspects``). The student's classifier gets
A extra outputs, trained with binary cross-entropy against them::

    L = CE_WEIGHT * CE(logits[:K], y) + FEAT_WEIGHT * BCEWithLogits(logits[K:], p_yes)

The authors widen the last linear layer to K + A outputs; here the A outputs are a second linear
head on the same pooled feature, which is the same function and parametrisation (a K + A row
matrix is a K-row and an A-row matrix) and keeps the student's checkpoint a K-class classifier.
"""

import torch.nn.functional as F
from torch import nn

from ..errors import LavidError
from ..models import pooled_dim
from ._sample_teacher import SampleTeacherDistiller
from .registry import register


@register("MAKD")
class MaKD(SampleTeacherDistiller):

    NODE = "MAKD"
    BANK_KIND = "aspects"  # lavid teacher aspects writes its bank
    # the paper does not print MaKD's loss weight
    DEFAULTS = {"BANK": "",  # lavid teacher aspects: p_yes [N, A]
                "LOSS": {"CE_WEIGHT": 1.0, "FEAT_WEIGHT": 1.0}}  # FEAT: BCE-with-logits(aspect outputs, P(Yes))

    def __init__(self, student, teacher, cfg, precomputed=None):
        super().__init__(student, teacher, cfg, precomputed)
        self.aspect_head = nn.Linear(pooled_dim(student), self.bank.p_yes.shape[1])

    @classmethod
    def tensor_name(cls, cfg) -> str:
        return "p_yes"

    @classmethod
    def tensor_hint(cls, cfg) -> str:
        return " (write it with lavid teacher aspects)"

    def check_bank_tensor(self, values, where: str) -> None:
        super().check_bank_tensor(values, where)
        bad = (values < 0) | (values > 1)
        if bad.any():
            i, j = (int(x) for x in bad.nonzero()[0])
            raise LavidError(f"{where}: p_yes holds values outside [0, 1] (first: {float(values[i, j]):g} for sample "
                             f"{self.bank.sample_ids[i]!r}, aspect {j + 1}); MaKD's targets are probabilities")

    def get_learnable_parameters(self):
        return super().get_learnable_parameters() + list(self.aspect_head.parameters())

    def get_extra_parameters(self):
        return sum(p.numel() for p in self.aspect_head.parameters())

    def teacher_loss(self, feats, teacher_rows, **kwargs):
        pred = self.aspect_head(feats["pooled_feat"]).float()
        return F.binary_cross_entropy_with_logits(pred, teacher_rows.float())
