"""FitNet on a multimodal LLM's hidden states (Table 1's "FitNet (LLaVA)", Table B).

Per training image the bank holds LLaVA's hidden state at the chosen layer (``lavid teacher
features``: ``last<layer>`` for the last prompt token, ``mean<layer>`` for the mean over tokens).
A learnable projection maps it to the student's pooled feature size; both are L2-normalised::

    L = CE_WEIGHT * CE + FEAT_WEIGHT * mean((normalize(f_s) - normalize(W t))^2)

as the authors' ``KDMSEModel`` (projection on the teacher side, ``F.mse_loss`` over batch and features).
"""

import torch.nn.functional as F
from torch import nn

from ..models import pooled_dim
from ._sample_teacher import FeatureBankDistiller
from .registry import register


@register("FITNET_MLLM")
class FitNetMLLM(FeatureBankDistiller):

    NODE = "FITNET_MLLM"
    DEFAULTS = {"BANK": "",  # lavid teacher features
                "LAYER": -12,  # hidden-state index (Table 1: -12; Table B: -1 ... -30)
                "TOKEN": "last",  # the last prompt token (the authors' default) or the mean over tokens
                # FEAT: on the MSE of L2-normalised features (1/D-sized per element); the paper prints no weight
                "LOSS": {"CE_WEIGHT": 1.0, "FEAT_WEIGHT": 40.0}}
    NODE = "FITNET_MLLM"

    def __init__(self, student, teacher, cfg, precomputed=None):
        super().__init__(student, teacher, cfg, precomputed)
        self.proj = nn.Linear(self.feature_dim, pooled_dim(student))

    def get_learnable_parameters(self):
        return super().get_learnable_parameters() + list(self.proj.parameters())

    def get_extra_parameters(self):
        return sum(p.numel() for p in self.proj.parameters())

    def teacher_loss(self, feats, teacher_rows, **kwargs):
        f_s = F.normalize(feats["pooled_feat"].float(), dim=1)
        f_t = F.normalize(self.proj(teacher_rows.to(self.proj.weight.dtype)).float(), dim=1)
        return F.mse_loss(f_s, f_t)
