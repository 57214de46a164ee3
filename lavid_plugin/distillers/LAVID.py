"""LaViD: Language-to-Visual Distillation (ICML 2026).

The student gets an auxiliary linear head ``S`` from its pooled feature to the signature's Q*M
answer probabilities, trained with::

    L = BASE_WEIGHT * L_base + LAVID_WEIGHT * mean((S(x) - T_y)^2)

(``LAVID_WEIGHT * (Q*M) / 250`` with ``LAVID.LOSS.SCALE_TO_PAPER``: the paper's lambda 40 is for
Q*M = 250; the head's step grows like ``lr * lambda / (Q*M)``, and the build warns when that is
more than 3x the paper's 0.0016.)

where ``T_y`` is the class's signature row (an :class:`~lavid_plugin.signature.LLMSignature`, looked
up by label) and ``L_base`` is cross-entropy (``LAVID.BASE: NONE``) or any base distiller's losses
(KD, DKD, MLKD, RKD, ...), e.g. ``BASE: MLKD`` + ``EXPERIMENT.LOGIT_STAND: True`` with a ResNet-50
teacher is the paper's "LaViD+LS" / "QN+R50" row. The mean runs over the batch and the Q*M outputs,
i.e. ``1/(QM) * ||S(x) - T_y||^2`` averaged over the batch (the authors' ``F.mse_loss``).

The student runs once per view: features for the LaViD head come from the same forward pass the
base distiller uses (the authors' code ran the student a second time for LaViD+MLKD).

Config example::

    DISTILLER: {TYPE: LAVID, STUDENT: resnet18}
    LAVID: {SIGNATURE: sig.safetensors, BASE: MLKD, VIEWS: [weak], LOSS: {BASE_WEIGHT: 1.0, LAVID_WEIGHT: 40.0}}
    EXPERIMENT: {LOGIT_STAND: True}

The signature is a precomputed per-class teacher (``LAVID.SIGNATURE``, see
:mod:`lavid_plugin.teacher_files`), aligned to the dataset by class name when the run is built. The base
distiller is a submodule (``base``) that owns the student and the visual teacher; ``student`` and
``teacher`` are read through it, so checkpoints hold ``base.student.*``, ``base.teacher.*`` and
``head.*``.

Warning: in the authors' code ``gamma`` (here ``BASE_WEIGHT``) multiplies the *whole* base loss when a
base distiller is used, not only its CE term; this is kept.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LavidError
from ..models import pooled_dim
from ..utils import get_logger
from ..teacher_files import TeacherFile
from ._base import Distiller
from .registry import lookup, register


def lavid_loss(pred, target_signature):
    """``mean((S(x) - T_y)^2)`` over batch and outputs, computed in fp32."""
    return F.mse_loss(pred.float(), target_signature.float())


#: the paper's setting: lr 0.01, lambda 40, Q*M = 250 (50 questions x 5 options)
PAPER_LR, PAPER_LAMBDA, PAPER_DIM = 0.01, 40.0, 250
#: warn when the head's step lr * lambda / (Q*M) exceeds the paper's by more than this factor
HEAD_STEP_WARN_FACTOR = 3.0


def effective_lambda(cfg, dim: int) -> float:
    """``LAVID.LOSS.LAVID_WEIGHT``, times ``(Q*M) / 250`` with ``LAVID.LOSS.SCALE_TO_PAPER``.

    Why ``(Q*M) / 250`` and not ``250 / (Q*M)``: the loss averages over the Q*M outputs, so the head's
    step is ``lr * lambda / (Q*M)``; multiplying lambda by ``(Q*M) / 250`` keeps that step (and the
    weight on the summed squared error) what the paper's lambda gives at Q*M = 250."""
    lam = float(cfg.LAVID.LOSS.LAVID_WEIGHT)
    return lam * dim / PAPER_DIM if cfg.LAVID.LOSS.SCALE_TO_PAPER else lam


def warn_if_head_step_large(lr: float, lam: float, dim: int, scaled: bool = False) -> bool:
    """The mean over Q*M outputs makes the head's step grow like ``lr * lambda / (Q*M)``; the paper's is
    0.0016. Far above it (a small custom signature with the paper's lambda) training can diverge in
    the first epoch: say so, once, with the lambda that would match the paper."""
    paper = PAPER_LR * PAPER_LAMBDA / PAPER_DIM
    step = lr * lam / dim
    if step <= HEAD_STEP_WARN_FACTOR * paper:
        return False
    get_logger().warning(f"LaViD head step lr*lambda/(Q*M) = {lr:g}*{lam:g}/{dim} = {step:.4f} is {step / paper:.1f}x "
          f"the paper's {paper:.4f} (lr {PAPER_LR}, lambda {PAPER_LAMBDA:g}, Q*M {PAPER_DIM}); lambda "
          f"{paper * dim / lr:.3g} would match it" + ("" if scaled else " (or set LAVID.LOSS.SCALE_TO_PAPER True to "
                                                                         "scale lambda by (Q*M)/250)"))
    return True


@register("LAVID")
class LaViD(Distiller):

    # L = BASE_WEIGHT * (CE or the base distiller's loss) + LAVID_WEIGHT * mean((S(x) - T_y)^2)
    NODE = "LAVID"
    DEFAULTS = {
        "SIGNATURE": "",  # an LLMSignature file (.safetensors), aligned to the dataset by class name
        "NORMALIZE_NAMES": False,  # fold case/underscores/"001." prefixes when aligning
        "BASE": "NONE",  # the distiller LaViD composes with: NONE, KD, DKD, MLKD, RKD, ...
        "VIEWS": ["weak"],  # with a two-view base (MLKD): which views get the LaViD term
        "LOSS": {
            "BASE_WEIGHT": 1.0,  # gamma of the authors' code: weight of CE (BASE NONE) or of the whole base loss
            "LAVID_WEIGHT": PAPER_LAMBDA,  # lambda (beta in the authors' code; 40 in their README)
            # scale lambda by (Q*M) / 250, so the paper's lambda (set for Q*M = 250) keeps its meaning
            "SCALE_TO_PAPER": False,
        },
    }
    # the key weighted the whole base loss, not only its CE term; configs that still use it keep working
    RENAMED_KEYS = {"LOSS.CE_WEIGHT": "LOSS.BASE_WEIGHT"}
    def __init__(self, student, teacher, cfg, signature=None, precomputed=None):
        from ..signature.llm_signature import LLMSignature

        rows = None
        if precomputed is not None:
            signature, rows = precomputed.table, precomputed.sample_rows
        if signature is None and isinstance(teacher, LLMSignature):
            signature, teacher = teacher, None
        if signature is None:
            raise LavidError("LaViD needs a signature: pass it as the teacher, or signature=, or set LAVID.SIGNATURE")
        base_cls = self.base_class(cfg)
        if base_cls.needs_teacher(cfg) and teacher is None:
            raise LavidError(f"LAVID.BASE {cfg.LAVID.BASE} needs a visual teacher (DISTILLER.TEACHER and "
                             f"DISTILLER.TEACHER_CKPT)")
        if not hasattr(base_cls, "view_losses"):
            raise LavidError(f"LAVID.BASE {cfg.LAVID.BASE} does not expose view_losses(); it cannot share the "
                             f"student's forward pass")
        nn.Module.__init__(self)
        self.base = base_cls(student, teacher, cfg)  # owns the student, the visual teacher, its own heads
        self.base_views = tuple(base_cls.views_for(cfg))
        self.signature = signature  # a buffer-only module: moves with .to(), not in state_dict
        self.head = nn.Linear(pooled_dim(student), signature.dim)
        self.base_weight = cfg.LAVID.LOSS.BASE_WEIGHT
        self.lavid_weight = effective_lambda(cfg, signature.dim)
        self.views = tuple(v.lower() for v in cfg.LAVID.VIEWS)
        bad = [v for v in self.views if v not in ("weak", "strong")]
        if bad or not self.views:
            raise LavidError(f"LAVID.VIEWS must list 'weak' and/or 'strong', got {list(cfg.LAVID.VIEWS)}")
        if self.lavid_weight < 0 or self.base_weight < 0:
            raise LavidError(f"LAVID loss weights must be >= 0, got BASE_WEIGHT={self.base_weight}, "
                             f"LAVID_WEIGHT={self.lavid_weight}")
        warn_if_head_step_large(cfg.SOLVER.LR, self.lavid_weight, signature.dim, cfg.LAVID.LOSS.SCALE_TO_PAPER)
        if rows is not None:
            self.set_sample_rows(rows)

    @property
    def student(self):
        return self.base.student

    @property
    def teacher(self):
        """The base distiller's visual teacher; LaViD alone: the signature (mdistiller's contract)."""
        return self.base.teacher if self.base.teacher is not None else self.signature

    @classmethod
    def base_class(cls, cfg):
        return lookup(cfg.LAVID.BASE, "LAVID.BASE", exclude=("LAVID",))

    @classmethod
    def check_cfg(cls, cfg) -> None:
        base = cls.base_class(cfg)
        if hasattr(base, "check_cfg"):
            base.check_cfg(cfg)

    @classmethod
    def needs_teacher(cls, cfg):
        return cls.base_class(cfg).needs_teacher(cfg)

    @classmethod
    def views_for(cls, cfg):
        return cls.base_class(cfg).views_for(cfg)

    @classmethod
    def precomputed_teacher(cls, cfg):
        return TeacherFile("class", cfg.LAVID.SIGNATURE, "LAVID.SIGNATURE", normalize_names=cfg.LAVID.NORMALIZE_NAMES)

    def set_sample_rows(self, rows):
        """Look targets up by training-sample index instead of label: ``rows[i]`` is sample ``i``'s
        signature row (Waterbirds: its CUB species while the label is landbird/waterbird)."""
        rows = torch.as_tensor(list(rows), dtype=torch.long)
        if rows.numel() and (rows.min() < 0 or rows.max() >= self.signature.num_classes):
            raise LavidError(f"signature rows must lie in [0, {self.signature.num_classes}), got "
                             f"[{int(rows.min())}, {int(rows.max())}]")
        self.register_buffer("sample_rows", rows, persistent=False)

    def targets(self, target, index=None):
        """The signature rows ``T`` for a batch: by label, or by sample index when rows were set."""
        rows = getattr(self, "sample_rows", None)
        if rows is None:
            return self.signature(target)
        if index is None:
            raise LavidError("this LaViD run maps training samples to signature rows (e.g. Waterbirds -> CUB species) "
                             "and needs the batch's sample indices: call forward_train(..., index=index)")
        return self.signature(rows[index])

    def train(self, mode: bool = True):
        super().train(mode)
        self.signature.eval()
        return self

    def get_learnable_parameters(self):
        return self.base.get_learnable_parameters() + list(self.head.parameters())

    def get_extra_parameters(self):
        return self.base.get_extra_parameters() + sum(p.numel() for p in self.head.parameters())

    def forward_train(self, image=None, target=None, image_weak=None, image_strong=None, **kwargs):
        images = {"weak": image_weak, "strong": image_strong} if image_weak is not None else {"image": image}
        outputs = {v: self.student(x) for v, x in images.items()}
        base_images, base_outputs = images, outputs
        if "image" not in images and self.base_views == ("image",):
            base_images, base_outputs = {"image": images["weak"]}, {"image": outputs["weak"]}
        losses = {k: self.base_weight * v for k, v in
                  self.base.view_losses(base_outputs, base_images, target, **kwargs).items()}
        t = self.targets(target, kwargs.get("index"))
        use = [v for v in outputs if v == "image" or v in self.views]
        terms = [lavid_loss(self.head(outputs[v][1]["pooled_feat"]), t) for v in use]
        losses["loss_lavid"] = self.lavid_weight * sum(terms) / len(terms)
        return next(iter(outputs.values()))[0], losses
