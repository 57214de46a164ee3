"""Stage 2 distillers with mdistiller's contract, and their registry ``distiller_dict``.

Each class may refine three class methods instead of ``if TYPE == ...`` chains elsewhere:
``needs_teacher(cfg)``, ``views_for(cfg)`` (``("image",)`` or ``("weak", "strong")``: what the
train loader must yield) and ``build(student, teacher, cfg, ctx)``.
"""

from ._base import Distiller, Vanilla
from .DKD import DKD, dkd_loss
from .KD import KD, kd_loss
from .LAVID import LaViD, lavid_loss
from .MLKD import MLKD, mlkd_loss
from .RKD import RKD, rkd_loss

distiller_dict = {
    "NONE": Vanilla,
    "KD": KD,
    "DKD": DKD,
    "MLKD": MLKD,
    "RKD": RKD,
    "LAVID": LaViD,
}

__all__ = ["Distiller", "Vanilla", "KD", "DKD", "MLKD", "RKD", "LaViD", "distiller_dict", "kd_loss", "dkd_loss",
           "mlkd_loss", "rkd_loss", "lavid_loss"]
