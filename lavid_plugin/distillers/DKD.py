import torch
import torch.nn.functional as F

from ..errors import LavidError
from ._base import Distiller, normalize
from .registry import register


def dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature, logit_stand=False):
    """Decoupled KD (Zhao et al., CVPR 2022): ``alpha * TCKD + beta * NCKD``.

    TCKD is the KL between the binary (target, non-target) distributions; NCKD the KL among the
    non-target classes (the target masked with -1000 before the softmax, as the reference code).
    """
    if logit_stand:
        logits_student, logits_teacher = normalize(logits_student), normalize(logits_teacher)
    gt = torch.zeros_like(logits_student).scatter_(1, target.reshape(-1, 1), 1).bool()
    p_s = F.softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    b_s = torch.stack([(p_s * gt).sum(1), (p_s * ~gt).sum(1)], dim=1)
    b_t = torch.stack([(p_t * gt).sum(1), (p_t * ~gt).sum(1)], dim=1)
    n = target.shape[0]
    tckd = F.kl_div(torch.log(b_s), b_t, reduction="sum") * temperature**2 / n
    log_p_s2 = F.log_softmax(logits_student / temperature - 1000.0 * gt, dim=1)
    p_t2 = F.softmax(logits_teacher / temperature - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_p_s2, p_t2, reduction="sum") * temperature**2 / n
    return alpha * tckd + beta * nckd


@register("DKD")
class DKD(Distiller):
    """Decoupled Knowledge Distillation. Config: ``DKD.{CE_WEIGHT,ALPHA,BETA,T,WARMUP}``; the DKD term
    ramps up linearly over ``WARMUP`` epochs (``kwargs["epoch"]``)."""

    NODE = "DKD"
    DEFAULTS = {"CE_WEIGHT": 1.0, "ALPHA": 1.0, "BETA": 8.0, "T": 4.0, "WARMUP": 20}  # mdistiller's

    def __init__(self, student, teacher, cfg):
        super().__init__(student, teacher)
        self.ce_loss_weight = cfg.DKD.CE_WEIGHT
        self.alpha, self.beta = cfg.DKD.ALPHA, cfg.DKD.BETA
        self.temperature, self.warmup = cfg.DKD.T, cfg.DKD.WARMUP
        self.logit_stand = cfg.EXPERIMENT.LOGIT_STAND
        self.check_cfg(cfg)

    @classmethod
    def check_cfg(cls, cfg) -> None:
        if cfg.DKD.WARMUP <= 0:
            raise LavidError(f"DKD.WARMUP must be > 0 epochs, got {cfg.DKD.WARMUP}")
        if cfg.DKD.T <= 0:
            raise LavidError(f"DKD.T must be > 0, got {cfg.DKD.T}")

    def view_losses(self, outputs, images, target, **kwargs):
        (logits_student, _), image = outputs["image"], images["image"]
        with torch.no_grad():
            logits_teacher, _ = self.teacher(image)
        ramp = min(kwargs["epoch"] / self.warmup, 1.0)
        return {
            "loss_ce": self.ce_loss_weight * F.cross_entropy(logits_student, target),
            "loss_kd": ramp * dkd_loss(logits_student, logits_teacher.float(), target, self.alpha, self.beta,
                                       self.temperature, self.logit_stand),
        }

    def forward_train(self, image, target, **kwargs):
        return self.run_views({"image": image}, target, **kwargs)
