"""The bridge, model part: the plugin's students and teachers in mdistiller's ``cifar_model_dict``.

mdistiller's ``tools/train.py`` builds and loads a teacher for every ``DISTILLER.TYPE`` but ``NONE``.
For a distiller whose registry hook says it needs no visual teacher (LaViD alone: its teacher is a
precomputed file), ``DISTILLER.TEACHER`` names :data:`PLACEHOLDER` (``LLMSignature``, as the
plugin's configs write it): a module without weights, loaded from an empty checkpoint, that the
bridged constructor drops.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from lavid_plugin.errors import LavidError
from lavid_plugin.utils import get_logger

PLACEHOLDER = "LLMSignature"


class TeacherPlaceholder(nn.Module):
    """Stands for a precomputed teacher where mdistiller expects a network; never called."""

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes


def empty_checkpoint() -> str:
    """A checkpoint with no weights for the placeholder (mdistiller always loads one)."""
    from lavid_plugin.utils import atomic_torch_save

    path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lavid_plugin" / "no_weights.pth"
    if not path.is_file():
        atomic_torch_save({"model": {}}, path)
    return str(path)


def register_models(model_dict: dict) -> list[str]:
    from lavid_plugin.models import CONTEXT_MODELS
    from lavid_plugin.models import model_dict as plugin_models

    added = []
    for name, ctor in plugin_models.items():
        # ViT / CLIP students need the run's weights and class names, which mdistiller's
        # ``model_dict[name][0](num_classes=...)`` cannot give: they train with the plugin's trainer
        if name not in model_dict and name not in CONTEXT_MODELS:
            model_dict[name] = (lambda num_classes, _ctor=ctor: _ctor(num_classes), None)
            added.append(name)
    model_dict[PLACEHOLDER] = (TeacherPlaceholder, None)
    return added + [PLACEHOLDER]


def point_teacher(cfg, cls) -> None:
    """Point mdistiller's teacher entry at this run's checkpoint, or at the placeholder."""
    import mdistiller.models as md_models

    model_dict = md_models.cifar_model_dict
    if cfg.DISTILLER.TYPE == "NONE":
        return
    if not cls.needs_teacher(cfg):
        if cfg.DISTILLER.TEACHER != PLACEHOLDER:
            frozen = cfg.is_frozen()
            cfg.defrost()
            cfg.DISTILLER.TEACHER = PLACEHOLDER
            if frozen:
                cfg.freeze()
            get_logger("lavid.bridge").info(f"{cfg.DISTILLER.TYPE} needs no visual teacher "
                                            f"(DISTILLER.TEACHER {PLACEHOLDER})")
        model_dict[PLACEHOLDER] = (TeacherPlaceholder, empty_checkpoint())
        return
    name = cfg.DISTILLER.TEACHER
    if name not in model_dict:
        raise LavidError(f"DISTILLER.TEACHER {name!r} is neither the plugin's nor mdistiller's model")
    if not cfg.DISTILLER.TEACHER_CKPT:
        raise LavidError(f"DISTILLER.TYPE {cfg.DISTILLER.TYPE} needs a trained {name}: set DISTILLER.TEACHER_CKPT")
    if not Path(cfg.DISTILLER.TEACHER_CKPT).is_file():
        raise LavidError(f"DISTILLER.TEACHER_CKPT {cfg.DISTILLER.TEACHER_CKPT} does not exist")
    model_dict[name] = (model_dict[name][0], str(cfg.DISTILLER.TEACHER_CKPT))
