import torch
import torch.nn.functional as F

from ._base import Distiller
from .registry import register


def _pdist(e, squared, eps):
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps)
    if not squared:
        d = d.sqrt()
    d = d.clone()
    d[range(len(e)), range(len(e))] = 0
    return d


def rkd_loss(f_s, f_t, squared=False, eps=1e-12, distance_weight=25, angle_weight=50):
    """Relational KD (Park et al., CVPR 2019): distance and angle structure of the batch's features."""
    s = f_s.reshape(f_s.shape[0], -1)
    t = f_t.reshape(f_t.shape[0], -1)
    with torch.no_grad():
        t_d = _pdist(t, squared, eps)
        t_d = t_d / t_d[t_d > 0].mean()
        td = F.normalize(t.unsqueeze(0) - t.unsqueeze(1), p=2, dim=2)
        t_angle = torch.bmm(td, td.transpose(1, 2)).reshape(-1)
    d = _pdist(s, squared, eps)
    d = d / d[d > 0].mean()
    sd = F.normalize(s.unsqueeze(0) - s.unsqueeze(1), p=2, dim=2)
    s_angle = torch.bmm(sd, sd.transpose(1, 2)).reshape(-1)
    return distance_weight * F.smooth_l1_loss(d, t_d) + angle_weight * F.smooth_l1_loss(s_angle, t_angle)


@register("RKD")
class RKD(Distiller):
    """Relational Knowledge Distillation on the pooled features. Config: ``RKD.*``."""

    NODE = "RKD"
    DEFAULTS = {"DISTANCE_WEIGHT": 25, "ANGLE_WEIGHT": 50, "LOSS": {"CE_WEIGHT": 1.0, "FEAT_WEIGHT": 1.0},
                "PDIST": {"EPSILON": 1e-12, "SQUARED": False}}  # mdistiller's

    def __init__(self, student, teacher, cfg):
        super().__init__(student, teacher)
        self.distance_weight, self.angle_weight = cfg.RKD.DISTANCE_WEIGHT, cfg.RKD.ANGLE_WEIGHT
        self.ce_loss_weight, self.feat_loss_weight = cfg.RKD.LOSS.CE_WEIGHT, cfg.RKD.LOSS.FEAT_WEIGHT
        self.eps, self.squared = cfg.RKD.PDIST.EPSILON, cfg.RKD.PDIST.SQUARED

    def view_losses(self, outputs, images, target, **kwargs):
        (logits_student, feats_student), image = outputs["image"], images["image"]
        with torch.no_grad():
            _, feats_teacher = self.teacher(image)
        return {
            "loss_ce": self.ce_loss_weight * F.cross_entropy(logits_student, target),
            "loss_kd": self.feat_loss_weight * rkd_loss(feats_student["pooled_feat"].float(),
                                                        feats_teacher["pooled_feat"].float(), self.squared,
                                                        self.eps, self.distance_weight, self.angle_weight),
        }

    def forward_train(self, image, target, **kwargs):
        return self.run_views({"image": image}, target, **kwargs)
