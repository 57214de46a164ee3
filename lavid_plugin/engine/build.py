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
    #: names the signature aligns to when they are not the labels' (Waterbirds: the CUB species)
    signature_classes: Sequence[str] | None = None
    #: per training sample, its row of the aligned signature (None: the row is the label)
    signature_rows: Sequence[int] | None = None

    def signature(self):
        """``LAVID.SIGNATURE`` loaded once and aligned by name to the dataset's classes (or to its
        ``signature_classes``)."""
        if self._signature is None:
            from ..signature.signature import LLMSignature

            path = self.cfg.LAVID.SIGNATURE
            if not path:
                raise LavidError("LAVID.SIGNATURE is empty: set it to a signature file (lavid signature extract/import)")
            sig = LLMSignature.load(path)
            try:
                names = self.signature_classes if self.signature_classes is not None else self.class_names
                self._signature = sig.align(names, normalize=self.cfg.LAVID.NORMALIZE_NAMES)
            except LavidError as e:
                raise LavidError(f"{path}: {e}") from None
        return self._signature


def build_distiller(cfg, class_names: Sequence[str], num_data: int = 0, signature=None, splits=None):
    """Student (+ teacher) + distiller from ``cfg``; ``splits`` (a :class:`~lavid_plugin.data.Splits`)
    passes dataset facts a distiller may need (LaViD's per-sample signature rows)."""
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
    ctx = BuildContext(cfg, list(class_names), num_data, signature,
                       signature_classes=getattr(splits, "signature_classes", None),
                       signature_rows=getattr(splits, "signature_rows", None))
    return cls.build(student, teacher, cfg, ctx)
