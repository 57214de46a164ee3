"""mdistiller's distiller zoo inside the plugin, when mdistiller (or its logit-standardization fork) is installed.

Every entry of ``mdistiller.distillers.distiller_dict`` is registered in the plugin's registry as
``MD_<NAME>``, and also as ``<NAME>`` where the plugin has no distiller of that name (AT, OFD,
FITNET, KDSVD, CRD, NST, PKT, SP, VID, REVIEWKD, ...; the plugin's own KD/DKD/RKD/MLKD keep theirs).
They run on the plugin's datasets, students and teachers through a thin subclass that:

* fills the keys mdistiller sizes for CIFAR from the actual models, on a copy of the config:
  ``FITNET.INPUT_SIZE`` and ``VID.INPUT_SIZE`` = ``DATASET.IMAGE_SIZE``; ``CRD.FEAT.STUDENT_DIM`` /
  ``TEACHER_DIM`` = the pooled feature sizes; ``REVIEWKD.IN_CHANNELS`` / ``OUT_CHANNELS`` /
  ``SHAPES`` / ``OUT_SHAPES`` from the stage features (``STU_PREACT`` on, as its ImageNet configs);
* gives CRD its contrastive sampling loader (``wrap_train_set``: ``CRD.NCE.K`` negatives,
  ``CRD.MODE`` exact/relax, as mdistiller's ``CIFAR100InstanceSample``);
* runs one forward pass on a copy at build time, so a pair that cannot work fails before training
  with a :class:`LavidError` that names the distiller, the models and mdistiller's own message.
"""

from __future__ import annotations

import copy

import torch

from ..data.contrastive import ContrastiveSampling  # noqa: F401 (CRD's loader; re-exported)
from ..errors import LavidError


def _raised_in_torch_cuda(error: BaseException) -> bool:
    """Whether ``error`` came out of ``torch.cuda`` (code that calls ``.cuda()`` on a machine without
    CUDA): told by where it was raised, not by its message."""
    import os

    marker = f"{os.sep}torch{os.sep}cuda{os.sep}"
    tb = error.__traceback__
    while tb is not None:
        if marker in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def mdistiller_zoo():
    """mdistiller's ``distiller_dict``, or None when mdistiller is not installed."""
    try:
        from mdistiller.distillers import distiller_dict as md
    except ImportError:
        return None
    return md


def adapted_cfg(name: str, cfg, student, teacher):
    """A copy of ``cfg`` with the CIFAR-sized keys of ``name`` set from the actual models."""
    cfg = cfg.clone()
    cfg.defrost()
    size = int(cfg.DATASET.IMAGE_SIZE)
    if name == "FITNET":
        cfg.FITNET.INPUT_SIZE = (size, size)
    if name == "VID":
        cfg.VID.INPUT_SIZE = (size, size)
    if name == "CRD":
        cfg.CRD.FEAT.STUDENT_DIM = int(student.num_features)
        cfg.CRD.FEAT.TEACHER_DIM = int(teacher.num_features)
    if name == "REVIEWKD":  # stages after the stem, then the pooled feature; shapes deepest first
        x = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            s_feats = copy.deepcopy(student).eval()(x)[1]["preact_feats"][1:]
            t_feats = copy.deepcopy(teacher).eval()(x)[1]["preact_feats"][1:]
        cfg.REVIEWKD.IN_CHANNELS = [f.shape[1] for f in s_feats] + [int(student.num_features)]
        cfg.REVIEWKD.OUT_CHANNELS = [f.shape[1] for f in t_feats] + [int(teacher.num_features)]
        cfg.REVIEWKD.SHAPES = [1] + [f.shape[-1] for f in s_feats[::-1]]
        cfg.REVIEWKD.OUT_SHAPES = [1] + [f.shape[-1] for f in t_feats[::-1]]
        cfg.REVIEWKD.STU_PREACT = True
    cfg.freeze()
    return cfg


def _dry_run(name, model, cfg, num_data):
    """One forward_train on a copy, two random images: shape mismatches surface here, clearly."""
    probe = copy.deepcopy(model).train()
    size = int(cfg.DATASET.IMAGE_SIZE)
    kwargs = {"image": torch.randn(2, 3, size, size), "target": torch.zeros(2, dtype=torch.long), "epoch": 1}
    if name == "MLKD":
        kwargs = {"image_weak": kwargs["image"], "image_strong": kwargs["image"].flip(-1),
                  "target": kwargs["target"], "epoch": 1}
    if name == "CRD":
        kwargs["index"] = torch.tensor([0, 1 % max(num_data, 1)])
        kwargs["contrastive_index"] = torch.randint(0, max(num_data, 1), (2, cfg.CRD.NCE.K + 1))
    with torch.no_grad():
        probe.forward_train(**kwargs)


def adapter(name: str, md_cls):
    """The plugin-registry subclass of mdistiller's distiller ``name``."""

    class MdistillerDistiller(md_cls):
        mdistiller_name = name

        @classmethod
        def needs_teacher(cls, cfg):
            return name != "NONE"

        @classmethod
        def views_for(cls, cfg):
            return ("weak", "strong") if name == "MLKD" else ("image",)

        @classmethod
        def wrap_train_set(cls, cfg, dataset):
            return ContrastiveSampling(dataset, cfg.CRD.NCE.K, cfg.CRD.MODE) if name == "CRD" else dataset

        @classmethod
        def build(cls, student, teacher, cfg, ctx):
            what = f"mdistiller's {name} with student {cfg.DISTILLER.STUDENT} and teacher {cfg.DISTILLER.TEACHER}"
            if name == "NONE":
                return cls(student)
            mcfg = adapted_cfg(name, cfg, student, teacher)
            try:
                model = cls(student, teacher, mcfg, ctx.num_data) if name == "CRD" else cls(student, teacher, mcfg)
                _dry_run(name, model, mcfg, ctx.num_data)
            except LavidError:
                raise
            except Exception as e:  # mdistiller's own failure, named
                if _raised_in_torch_cuda(e):
                    raise LavidError(f"unsupported here: {what} needs CUDA (mdistiller's code calls .cuda()): "
                                     f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
                hint = f"; its settings live in CFG.{name} (sized for CIFAR by default)" if name in cfg else ""
                raise LavidError(f"unsupported: {what} cannot run at {cfg.DATASET.IMAGE_SIZE} px: "
                                 f"{type(e).__name__}: {e}{hint}") from None
            return model

    MdistillerDistiller.__name__ = MdistillerDistiller.__qualname__ = f"Mdistiller{md_cls.__name__}"
    return MdistillerDistiller


def register(registry: dict) -> list[str]:
    """Add mdistiller's zoo to ``registry``; returns the names added (none without mdistiller)."""
    md = mdistiller_zoo()
    if md is None:
        return []
    added = []
    for name, cls in md.items():
        if cls.__module__.split(".")[0] in ("lavid_plugin", "mdistiller_patches"):
            continue  # the bridge's own entries (LAVID, PLUGIN_*) once it has patched mdistiller
        a = adapter(name.upper(), cls)
        for key in ([f"MD_{name.upper()}"] + ([name.upper()] if name.upper() not in registry else [])):
            registry[key] = a
            added.append(key)
    return added
