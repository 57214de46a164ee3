import torch
import torch.nn.functional as F

from ._base import Distiller, normalize
from .registry import register


def kd_loss(logits_student, logits_teacher, temperature, logit_stand=False, reduce=True):
    """Hinton et al. 2015: ``T^2 * KL(softmax(t/T) || softmax(s/T))``, summed over classes.

    With ``logit_stand`` both logits are z-scored first (the logit-standardization fork).
    ``reduce=False`` returns one value per sample.
    """
    if logit_stand:
        logits_student, logits_teacher = normalize(logits_student), normalize(logits_teacher)
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    loss = F.kl_div(log_p_s, p_t, reduction="none").sum(1)
    loss = loss.mean() if reduce else loss
    return loss * temperature**2


@register("KD")
class KD(Distiller):
    """Distilling the Knowledge in a Neural Network. Config: ``KD.TEMPERATURE``, ``KD.LOSS.{CE,KD}_WEIGHT``."""

    NODE = "KD"
    DEFAULTS = {"TEMPERATURE": 4, "LOSS": {"CE_WEIGHT": 0.1, "KD_WEIGHT": 0.9}}  # mdistiller's

    def __init__(self, student, teacher, cfg):
        super().__init__(student, teacher)
        self.temperature = cfg.KD.TEMPERATURE
        self.ce_loss_weight = cfg.KD.LOSS.CE_WEIGHT
        self.kd_loss_weight = cfg.KD.LOSS.KD_WEIGHT
        self.logit_stand = cfg.EXPERIMENT.LOGIT_STAND

    def view_losses(self, outputs, images, target, **kwargs):
        (logits_student, _), image = outputs["image"], images["image"]
        with torch.no_grad():
            logits_teacher, _ = self.teacher(image)
        return {
            "loss_ce": self.ce_loss_weight * F.cross_entropy(logits_student, target),
            "loss_kd": self.kd_loss_weight * kd_loss(logits_student, logits_teacher.float(), self.temperature,
                                                     self.logit_stand),
        }

    def forward_train(self, image, target, **kwargs):
        return self.run_views({"image": image}, target, **kwargs)
