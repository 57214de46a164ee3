"""A run, built once: the distiller class, the data, the build context and the distiller.

The plugin's ``tools/train.py`` and the mdistiller bridge both build from here, so views, splits,
the distiller's train-set wrapping, loaders and precomputed teachers are set up one way:

    cls = distiller_class(cfg)                  # the one place DISTILLER.TYPE is checked
    run = setup_data(cfg, cls, run_dir=...)     # loaders + the BuildContext
    distiller = build_distiller(cfg, run.context, cls)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..errors import LavidError
from ..teacher_files import LoadedTeacher, TeacherFile


def distiller_class(cfg, registry: dict | None = None):
    """``DISTILLER.TYPE``'s class in ``registry`` (default: the plugin's ``distiller_dict``)."""
    if registry is None:
        from ..distillers import distiller_dict as registry
    kind = cfg.DISTILLER.TYPE
    if kind not in registry:
        raise LavidError(f"DISTILLER.TYPE {kind!r} is not registered; known: {sorted(registry)}")
    cls = registry[kind]
    if hasattr(cls, "check_cfg"):  # (mdistiller's own classes have no such hook)
        cls.check_cfg(cfg)
    return cls


@dataclass
class BuildContext:
    """What a distiller may need from the dataset when it is built: class names, the training-set
    size, and (through ``splits``) the sample ids and per-sample teacher classes its precomputed
    teacher aligns to."""
    cfg: object
    class_names: Sequence[str]
    num_data: int = 0
    splits: object = field(default=None, repr=False)
    #: config key -> content hash of each precomputed teacher loaded (a resumed run must read the same)
    teacher_hashes: dict = field(default_factory=dict)

    @classmethod
    def from_splits(cls, cfg, splits) -> "BuildContext":
        return cls(cfg, list(splits.classes), len(splits.train), splits)

    @property
    def sample_ids(self) -> list[str]:
        """Training samples' ids (:func:`lavid_plugin.data.sample_ids`)."""
        from ..data import sample_ids

        return sample_ids(self.splits, self.cfg.DATASET.ROOT)

    def load_teacher(self, spec: TeacherFile) -> LoadedTeacher:
        """Load the precomputed teacher ``spec`` names and align it to this dataset; errors name the
        file and the config key."""
        if not spec.path:
            raise LavidError(f"{spec.key} is empty: set it to the teacher file this distiller reads")
        try:
            if spec.per == "class":
                from ..signature.llm_signature import LLMSignature

                names = getattr(self.splits, "signature_classes", None) or self.class_names
                table = LLMSignature.load(spec.path).align(names, normalize=spec.normalize_names,
                                                           aliases=getattr(self.splits, "class_aliases", None))
                loaded = LoadedTeacher(table, getattr(self.splits, "signature_rows", None))
            else:
                from ..image_teacher import SampleBank

                loaded = LoadedTeacher(SampleBank.load(spec.path).align(self.sample_ids))
        except LavidError as e:
            msg = str(e)
            raise LavidError(msg if msg.startswith(str(spec.path)) else f"{spec.path} ({spec.key}): {msg}") from None
        self.teacher_hashes[spec.key] = loaded.table.content_hash()
        return loaded


@dataclass
class RunData:
    train_loader: object
    val_loader: object
    splits: object
    context: BuildContext
    select_loader: object = None  # the validation split for LOG.SELECT best_val_loss (Waterbirds)


def setup_data(cfg, cls=None, *, views=None, run_dir=None, rank: int = 0, world: int = 1, generator=None) -> RunData:
    """Views -> splits -> the distiller's ``wrap_train_set`` -> loaders, and the build context.

    ``cls``: the class whose registry hooks describe ``DISTILLER.TYPE`` (default
    :func:`distiller_class`); ``views`` overrides its ``views_for`` (mdistiller's
    ``get_dataset_strong``); ``run_dir``: where a drawn split is saved. Under DDP rank 0 prepares the
    data (the demo's images, a drawn split) before the other ranks read it."""
    import torch.distributed as dist

    from ..data import build_loaders, build_splits, eval_loader

    cls = cls if cls is not None else distiller_class(cfg)
    views = tuple(views or cls.views_for(cfg))
    if world > 1:
        if rank == 0:
            build_splits(cfg, views, run_dir=run_dir)
        dist.barrier()
    splits = build_splits(cfg, views, run_dir=run_dir)
    splits.train = cls.wrap_train_set(cfg, splits.train)
    train, val = build_loaders(cfg, splits, rank=rank, world=world, generator=generator)
    select = eval_loader(cfg, splits.select, rank=rank, world=world) if splits.select is not None else None
    return RunData(train, val, splits, BuildContext.from_splits(cfg, splits), select)


def build_visual_teacher(cfg, cls, num_classes: int):
    """The trained visual teacher, frozen, when ``cls`` needs one; else None."""
    from ..models import build_model, load_weights

    if not cls.needs_teacher(cfg):
        return None
    if not cfg.DISTILLER.TEACHER_CKPT:
        from ..models import ALIASES, model_dict

        if cfg.DISTILLER.TEACHER in model_dict or cfg.DISTILLER.TEACHER in ALIASES:
            how = f"train one with DISTILLER.TYPE NONE, DISTILLER.STUDENT {cfg.DISTILLER.TEACHER}"
        else:  # e.g. "LLMSignature", the placeholder of a run whose only teacher is the signature
            how = f"and set DISTILLER.TEACHER to a visual model ({sorted(model_dict)}), not {cfg.DISTILLER.TEACHER!r}"
        raise LavidError(f"DISTILLER.TYPE {cfg.DISTILLER.TYPE} needs a trained visual teacher: set "
                         f"DISTILLER.TEACHER_CKPT ({how})")
    teacher = load_weights(build_model(cfg.DISTILLER.TEACHER, num_classes), cfg.DISTILLER.TEACHER_CKPT, "teacher")
    return teacher.requires_grad_(False)


def build_distiller(cfg, ctx: BuildContext, cls=None):
    """Student (+ visual teacher) + distiller; the distiller's ``build`` reads its precomputed
    teacher through ``ctx``."""
    from ..models import build_student

    cls = cls if cls is not None else distiller_class(cfg)
    student = build_student(cfg, ctx.class_names)
    return cls.build(student, build_visual_teacher(cfg, cls, len(ctx.class_names)), cfg, ctx)
