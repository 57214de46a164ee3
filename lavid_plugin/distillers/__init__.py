"""Stage 2 distillers with mdistiller's contract, and their registry ``distiller_dict``.

Each distiller registers itself in its own file (``@register("NAME")``, :mod:`.registry`) and is
imported here. Each class may refine five class methods instead of ``if TYPE == ...`` chains
elsewhere: ``needs_teacher(cfg)``, ``views_for(cfg)`` (``("image",)`` or ``("weak", "strong")``:
what the train loader must yield), ``wrap_train_set(cfg, dataset)`` (e.g. CRD's contrastive
sampling), ``precomputed_teacher(cfg)`` (the per-class or per-sample teacher file it reads, see
:mod:`lavid_plugin.teachers`) and ``build(student, teacher, cfg, ctx)``.

When mdistiller (or its logit-standardization fork) is installed, its whole zoo is registered too
(:mod:`.zoo`): ``MD_<NAME>`` for each of its distillers, and ``<NAME>`` where the plugin has none.
"""

from . import zoo
from ._base import Distiller, Vanilla
from .CRD_MLLM import CRDMLLM
from .DKD import DKD, dkd_loss
from .FITNET_MLLM import FitNetMLLM
from .KD import KD, kd_loss
from .LAVID import LaViD, lavid_loss
from .MAKD import MaKD
from .MLKD import MLKD, mlkd_loss
from .registry import distiller_dict, lookup, register
from .RKD import RKD, rkd_loss

#: plugin-native names; the rest of distiller_dict comes from mdistiller's zoo when it is installed
PLUGIN_DISTILLERS = tuple(distiller_dict)
MDISTILLER_DISTILLERS = tuple(zoo.register(distiller_dict))

__all__ = ["PLUGIN_DISTILLERS", "MDISTILLER_DISTILLERS", "Distiller", "Vanilla", "KD", "DKD", "MLKD", "RKD", "LaViD", "MaKD", "FitNetMLLM", "CRDMLLM",
           "distiller_dict", "lookup", "register", "kd_loss", "dkd_loss", "mlkd_loss", "rkd_loss", "lavid_loss"]
