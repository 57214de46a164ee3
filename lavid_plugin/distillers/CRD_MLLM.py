"""CRD (contrastive representation distillation, Tian et al. 2020) against a multimodal LLM's hidden states.

The teacher side is the bank's per-image feature (``lavid teacher features``), so nothing but the
student runs in the step. Both sides are embedded (linear + L2 norm, ``FEAT_DIM``); a memory bank
per side holds every training sample's running embedding. For each image, the positive is its own
memory row and the ``NCE.K`` negatives are other-class samples (the loader draws them:
``contrastive_index``, as the authors' dataset does; without it, uniform random rows)::

    L = CE_WEIGHT * CE + FEAT_WEIGHT * (NCE(student anchor, teacher memory) + NCE(teacher anchor, student memory))

This is the authors' ``CRDLoss`` / ``ContrastMemory`` (K 4096, T 0.07, momentum 0.5), written to
run on CPU and CUDA, and without host synchronisation: the normalising constants ``Z`` are set on
the first step from device tensors, not ``.item()``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.contrastive import ContrastiveSampling
from ..models import pooled_dim
from ._sample_teacher import FeatureBankDistiller
from .registry import register

EPS = 1e-7


class Embed(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.normalize(self.linear(x.flatten(1)), dim=1)


class ContrastMemory(nn.Module):
    """Two memory banks ``[N, D]`` (student and teacher embeddings) with momentum updates."""

    ddp_local = True  # each rank updates the rows of its own samples; DDP must not overwrite them

    def __init__(self, dim: int, num_data: int, k: int, temperature: float, momentum: float):
        super().__init__()
        self.num_data, self.k, self.t, self.momentum = num_data, k, temperature, momentum
        std = 1.0 / math.sqrt(dim / 3)
        self.register_buffer("memory_s", torch.rand(num_data, dim).mul_(2 * std).add_(-std))
        self.register_buffer("memory_t", torch.rand(num_data, dim).mul_(2 * std).add_(-std))
        self.register_buffer("z", torch.full((2,), -1.0))  # normalising constants, set on the first step

    def scores(self, memory, anchor, idx):
        w = memory.index_select(0, idx.reshape(-1)).detach().view(idx.shape[0], idx.shape[1], -1)
        return torch.exp(torch.bmm(w, anchor.unsqueeze(2)).squeeze(2) / self.t)  # [B, K + 1]

    def forward(self, v_s, v_t, index, contrast_index=None):
        if contrast_index is None:
            contrast_index = torch.randint(0, self.num_data, (v_s.shape[0], self.k + 1), device=v_s.device)
            contrast_index[:, 0] = index
        out_t = self.scores(self.memory_s, v_t, contrast_index)  # teacher anchor vs student memory
        out_s = self.scores(self.memory_t, v_s, contrast_index)  # student anchor vs teacher memory
        with torch.no_grad():
            now = torch.stack([out_s.mean(), out_t.mean()]) * self.num_data
            self.z.copy_(torch.where(self.z < 0, now, self.z))
        out_s, out_t = out_s / self.z[0], out_t / self.z[1]
        with torch.no_grad():
            for memory, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
                rows = memory.index_select(0, index) * self.momentum + v.detach() * (1 - self.momentum)
                memory.index_copy_(0, index, F.normalize(rows, dim=1))
        return out_s, out_t


def nce_loss(x: torch.Tensor, num_data: int) -> torch.Tensor:
    """Eq. (18) of CRD: column 0 the positive, the others the negatives."""
    m = x.shape[1] - 1
    noise = m / float(num_data)
    log_pos = torch.log(x[:, 0] / (x[:, 0] + noise + EPS))
    log_neg = torch.log(noise / (x[:, 1:] + noise + EPS))
    return -(log_pos.sum() + log_neg.sum()) / x.shape[0]


@register("CRD_MLLM")
class CRDMLLM(FeatureBankDistiller):

    NODE = "CRD_MLLM"
    DEFAULTS = {"BANK": "", "LAYER": -12, "TOKEN": "last", "FEAT_DIM": 128,
                "MODE": "exact",  # the positive is the sample itself (the authors); relax: a same-class sample
                "NCE": {"K": 4096, "T": 0.07, "MOMENTUM": 0.5},
                "LOSS": {"CE_WEIGHT": 1.0, "FEAT_WEIGHT": 0.8}}  # FEAT: mdistiller's CRD weight
    NODE = "CRD_MLLM"

    def __init__(self, student, teacher, cfg, precomputed=None):
        super().__init__(student, teacher, cfg, precomputed)
        node = cfg.CRD_MLLM
        self.num_data = len(self.bank)
        self.embed_s = Embed(pooled_dim(student), node.FEAT_DIM)
        self.embed_t = Embed(self.feature_dim, node.FEAT_DIM)
        self.memory = ContrastMemory(node.FEAT_DIM, self.num_data, node.NCE.K, node.NCE.T, node.NCE.MOMENTUM)

    @classmethod
    def wrap_train_set(cls, cfg, dataset):
        return ContrastiveSampling(dataset, cfg.CRD_MLLM.NCE.K, cfg.CRD_MLLM.MODE)

    def get_learnable_parameters(self):
        return super().get_learnable_parameters() + list(self.embed_s.parameters()) + list(self.embed_t.parameters())

    def get_extra_parameters(self):
        return sum(p.numel() for m in (self.embed_s, self.embed_t) for p in m.parameters())

    def teacher_loss(self, feats, teacher_rows, index=None, contrastive_index=None, **kwargs):
        v_s = self.embed_s(feats["pooled_feat"].float())
        v_t = self.embed_t(teacher_rows.to(self.embed_t.linear.weight.dtype)).float()
        out_s, out_t = self.memory(v_s, v_t, index, contrastive_index)
        return nce_loss(out_s, self.num_data) + nce_loss(out_t, self.num_data)
