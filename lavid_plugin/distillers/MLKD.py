"""Multi-level logit distillation (Jin et al., CVPR 2023) as the logit-standardization fork runs it."""

import torch
import torch.nn.functional as F

from ._base import Distiller
from .registry import register
from .KD import kd_loss

#: the fork's temperatures: the configured one, then 3, 5, 2, 6
EXTRA_TEMPERATURES = (3.0, 5.0, 2.0, 6.0)


def cc_loss(logits_student, logits_teacher, temperature):
    """Class-level consistency: ``||P_t^T P_t - P_s^T P_s||^2 / C``."""
    c = logits_teacher.shape[1]
    p_s = F.softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    return ((p_t.t() @ p_t - p_s.t() @ p_s) ** 2).sum() / c


def bc_loss(logits_student, logits_teacher, temperature):
    """Batch-level consistency: ``||P_t P_t^T - P_s P_s^T||^2 / B``."""
    b = logits_teacher.shape[0]
    p_s = F.softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    return ((p_t @ p_t.t() - p_s @ p_s.t()) ** 2).sum() / b


def mlkd_loss(s_weak, s_strong, t_weak, t_strong, target, temperature, ce_weight, kd_weight, logit_stand=False):
    """The fork's MLKD losses (``loss_ce``, ``loss_kd``, ``loss_cc``, ``loss_bc``).

    Warning, reproduced on purpose so results match the fork: (1) the "masked" weak terms multiply a
    batch-mean loss by the mean of the confidence mask (the mask is not applied per sample); (2) the
    strong-view KD term uses the *weak* logits at temperatures 2 and 6; (3) logit standardization
    applies to the KD terms only, not to the class/batch consistency terms; (4) the strong-view
    cc/bc terms are computed by the fork but not returned, so they are left out here.
    """
    temps = (temperature,) + EXTRA_TEMPERATURES
    with torch.no_grad():
        p_t = F.softmax(t_weak, dim=1)
        conf = p_t.max(dim=1).values
        mask = (conf <= torch.quantile(conf, 0.5)).float().mean()
        class_conf = p_t.sum(dim=0)
        class_mask = (class_conf <= torch.quantile(class_conf, 0.5)).float().mean()
    kd_weak = sum(kd_loss(s_weak, t_weak, T, logit_stand) for T in temps) * mask
    strong_pairs = [(s_strong, t_strong)] * 3 + [(s_weak, t_weak)] * 2
    kd_strong = sum(kd_loss(s, t, T, logit_stand) for (s, t), T in zip(strong_pairs, temps))
    cc_weak = sum(cc_loss(s_weak, t_weak, T) for T in temps) * class_mask
    bc_weak = sum(bc_loss(s_weak, t_weak, T) for T in temps) * mask
    return {
        "loss_ce": ce_weight * (F.cross_entropy(s_weak, target) + F.cross_entropy(s_strong, target)),
        "loss_kd": kd_weight * (kd_weak + kd_strong),
        "loss_cc": kd_weight * cc_weak,
        "loss_bc": kd_weight * bc_weak,
    }


@register("MLKD")
class MLKD(Distiller):
    """Two views per image (``image_weak``, ``image_strong``); one student forward per view.

    Config: ``MLKD.TEMPERATURE``, ``MLKD.LOSS.{CE,KD}_WEIGHT``, ``EXPERIMENT.LOGIT_STAND``.
    """

    # its own node, so KD and MLKD can differ (the logit-standardization fork's MLKD reads KD.*)
    NODE = "MLKD"
    DEFAULTS = {"TEMPERATURE": 4.0, "LOSS": {"CE_WEIGHT": 1.0, "KD_WEIGHT": 1.0}}

    def __init__(self, student, teacher, cfg):
        super().__init__(student, teacher)
        self.temperature = cfg.MLKD.TEMPERATURE
        self.ce_loss_weight = cfg.MLKD.LOSS.CE_WEIGHT
        self.kd_loss_weight = cfg.MLKD.LOSS.KD_WEIGHT
        self.logit_stand = cfg.EXPERIMENT.LOGIT_STAND

    @classmethod
    def views_for(cls, cfg):
        return ("weak", "strong")

    def view_losses(self, outputs, images, target, **kwargs):
        """``outputs``/``images``: dicts keyed by view name, holding the student's ``(logits, feats)``."""
        with torch.no_grad():
            t_weak, _ = self.teacher(images["weak"])
            t_strong, _ = self.teacher(images["strong"])
        return mlkd_loss(outputs["weak"][0], outputs["strong"][0], t_weak.float(), t_strong.float(), target,
                         self.temperature, self.ce_loss_weight, self.kd_loss_weight, self.logit_stand)

    def forward_train(self, image_weak, image_strong, target, **kwargs):
        return self.run_views({"weak": image_weak, "strong": image_strong}, target, **kwargs)
