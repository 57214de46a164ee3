"""Build students, teachers and the distiller from a config (the registry decides, no TYPE chains)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..errors import LavidError


@dataclass
class BuildContext:
    cfg: object
    class_names: Sequence[str]
    num_data: int = 0
    _signature: object = field(default=None, repr=False)

    def signature(self):
        """``LAVID.SIGNATURE`` loaded once and aligned to the dataset's classes by name."""
        if self._signature is None:
            from ..signature.signature import LLMSignature

            path = self.cfg.LAVID.SIGNATURE
            if not path:
                raise LavidError("LAVID.SIGNATURE is empty: set it to a signature file (lavid signature extract/import)")
            sig = LLMSignature.load(path)
            try:
                self._signature = sig.align(self.class_names, normalize=self.cfg.LAVID.NORMALIZE_NAMES)
            except LavidError as e:
                raise LavidError(f"{path}: {e}") from None
        return self._signature


def build_distiller(cfg, class_names: Sequence[str], num_data: int = 0, signature=None):
    from ..distillers import distiller_dict
    from ..models import build_model, load_weights

    kind = cfg.DISTILLER.TYPE
    if kind not in distiller_dict:
        raise LavidError(f"DISTILLER.TYPE {kind!r} is not registered; known: {sorted(distiller_dict)}")
    cls = distiller_dict[kind]
    num_classes = len(class_names)
    student = build_model(cfg.DISTILLER.STUDENT, num_classes)
    if cfg.DISTILLER.STUDENT_CKPT:
        load_weights(student, cfg.DISTILLER.STUDENT_CKPT, "student")
    teacher = None
    if cls.needs_teacher(cfg):
        if not cfg.DISTILLER.TEACHER_CKPT:
            raise LavidError(f"DISTILLER.TYPE {kind} needs a trained visual teacher: set DISTILLER.TEACHER_CKPT "
                             f"(train one with DISTILLER.TYPE NONE, DISTILLER.STUDENT {cfg.DISTILLER.TEACHER})")
        teacher = load_weights(build_model(cfg.DISTILLER.TEACHER, num_classes), cfg.DISTILLER.TEACHER_CKPT, "teacher")
        teacher.requires_grad_(False)
    ctx = BuildContext(cfg, list(class_names), num_data, signature)
    return cls.build(student, teacher, cfg, ctx)
