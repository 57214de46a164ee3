"""The bridge: lavid-plugin inside an installed mdistiller (upstream or the logit-standardization fork).

Either call it from Python before mdistiller builds anything::

    import mdistiller_patches
    mdistiller_patches.apply()

or enable it once per environment, so that mdistiller's own, unmodified ``tools/train.py`` runs the
plugin's configs::

    python -m mdistiller_patches enable       # writes a .pth hook into this environment's site-packages
    python -m mdistiller_patches status       # what is installed and patched
    python -m mdistiller_patches disable

After ``apply()`` mdistiller knows the plugin:

* ``mdistiller.engine.cfg.CFG`` gains every node and key of the plugin's config that it lacks
  (``LAVID``, ``MLKD``, ``DATASET.ROOT``, ...), with the plugin's defaults; its own keys keep their
  values (the fork's int ``KD.LOSS.KD_WEIGHT`` becomes the float it is meant to be, so that float
  values merge);
* ``distiller_dict`` gains ``LAVID``, the plugin's distillers as ``PLUGIN_KD``, ``PLUGIN_DKD``,
  ``PLUGIN_MLKD``, ``PLUGIN_RKD``, and ``MLKD`` where mdistiller has none (upstream; the fork's own
  MLKD keeps its name);
* ``get_dataset`` (and the fork's ``get_dataset_strong``) dispatch the plugin's dataset types and
  return mdistiller's ``(train_loader, val_loader, num_data, num_classes)`` with ``(image, target,
  index)`` batches (a ``(weak, strong)`` pair for two-view distillers, contrastive indices for CRD);
* ``cifar_model_dict`` (the dictionary mdistiller's ``tools/train.py`` uses for every dataset but
  ImageNet) builds the plugin's students and teachers (``resnet18``, ``resnet50``, ``mobilenetv2``,
  ``shufflenetv2``, ...), the visual teacher loading ``DISTILLER.TEACHER_CKPT``; a LaViD run whose
  only teacher is the signature uses ``DISTILLER.TEACHER: LLMSignature`` and needs no checkpoint;
* ``trainer_dict`` gains ``ours`` (the fork's name for the two-view MLKD trainer) where it is missing.

Limits: mdistiller's trainer does not pass sample indices to distillers, so Waterbirds' LaViD
targets (the CUB species of each image) need the plugin's ``tools/train.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lavid_plugin.errors import LavidError

PTH_NAME = "lavid_mdistiller_bridge.pth"
SIGNATURE_TEACHER = "LLMSignature"


class _State:
    applied = False
    cfg = None
    splits = None
    context = None


def mdistiller_variant() -> str | None:
    """``"fork"`` (logit-standardization-KD), ``"upstream"`` (megvii-research), or None."""
    try:
        from mdistiller.engine.cfg import CFG
    except ImportError:
        return None
    return "fork" if "LOGIT_STAND" in CFG.EXPERIMENT else "upstream"


# --------------------------------------------------------------------------------------- config
def merge_missing(dst, src) -> list[str]:
    """Add to yacs node ``dst`` every key of ``src`` it lacks (recursively); returns the added keys."""
    from yacs.config import CfgNode

    added = []
    for key, value in src.items():
        if key not in dst:
            dst[key] = value.clone() if isinstance(value, CfgNode) else value
            added.append(key)
        elif isinstance(value, CfgNode) and isinstance(dst[key], CfgNode):
            added += [f"{key}.{k}" for k in merge_missing(dst[key], value)]
    return added


def widen_int_defaults(dst, src) -> list[str]:
    """Make float every key that mdistiller declares int where the plugin (and upstream mdistiller)
    declare float: the fork declares ``KD.LOSS.KD_WEIGHT = 9``, so no float value (its own ImageNet
    configs' 0.5, the plugin's) merges into it under yacs' type check."""
    from yacs.config import CfgNode

    changed = []
    for key, value in src.items():
        if key not in dst:
            continue
        if isinstance(value, CfgNode) and isinstance(dst[key], CfgNode):
            changed += [f"{key}.{k}" for k in widen_int_defaults(dst[key], value)]
        elif isinstance(value, float) and type(dst[key]) is int:
            dst[key] = float(dst[key])
            changed.append(key)
    return changed


# ---------------------------------------------------------------------------------- distillers
def _bridge_lavid():
    from lavid_plugin.distillers import LaViD
    from lavid_plugin.signature.signature import LLMSignature

    class BridgeLaViD(LaViD):
        """LaViD with mdistiller's constructor ``(student, teacher, cfg)``: the teacher is either
        the signature itself (``DISTILLER.TEACHER: LLMSignature``) or the base distiller's visual
        teacher, the signature then read from ``LAVID.SIGNATURE``."""

        def __init__(self, student, teacher, cfg):
            if isinstance(teacher, LLMSignature):
                signature, teacher = teacher, None
            else:
                signature = _context(cfg).signature()
            super().__init__(student, teacher, cfg, signature=signature)
            rows = _context(cfg).signature_rows
            if rows is not None:
                self.set_sample_rows(rows)

    return BridgeLaViD


def _context(cfg):
    if _State.context is None:
        raise LavidError("the bridge learns the dataset's classes from get_dataset(cfg): call it before building "
                         "a LaViD distiller")
    return _State.context


def register_distillers(md_dict: dict) -> list[str]:
    from lavid_plugin.distillers import PLUGIN_DISTILLERS, distiller_dict

    added = {"LAVID": _bridge_lavid()}
    for name in PLUGIN_DISTILLERS:
        if name not in ("NONE", "LAVID"):
            added[f"PLUGIN_{name}"] = distiller_dict[name]
            if name not in md_dict:
                added[name] = distiller_dict[name]
    for k, v in added.items():
        md_dict[k] = v
    return sorted(added)


# ------------------------------------------------------------------------------------ datasets
def registry_class(cfg):
    """The class whose registry hooks (views, teacher, train-set wrapping) describe ``DISTILLER.TYPE``:
    the plugin's own (LAVID, PLUGIN_*) or the plugin's adapter of mdistiller's (CRD, the fork's MLKD...)."""
    import mdistiller.distillers as md_dist

    from lavid_plugin.distillers import distiller_dict

    kind = cfg.DISTILLER.TYPE
    md_cls = md_dist.distiller_dict.get(kind)
    if md_cls is not None and hasattr(md_cls, "views_for"):
        return md_cls
    cls = distiller_dict.get(f"MD_{kind.upper()}")
    if md_cls is None or cls is None:
        raise LavidError(f"DISTILLER.TYPE {kind!r} is not in mdistiller's distiller_dict: {sorted(md_dist.distiller_dict)}")
    return cls


def _plugin_loaders(cfg, views=None):
    from lavid_plugin.data import build_loaders, build_splits
    from lavid_plugin.engine.build import BuildContext

    cls = registry_class(cfg)
    views = views or cls.views_for(cfg)
    splits = build_splits(cfg, views)
    splits.train = cls.wrap_train_set(cfg, splits.train)
    if splits.val.groups is not None:  # mdistiller's validate() unpacks (image, target)
        splits.val.groups = None
    _State.cfg, _State.splits = cfg, splits
    _State.context = BuildContext(cfg, list(splits.classes), len(splits.train),
                                  signature_classes=splits.signature_classes, signature_rows=splits.signature_rows)
    _prepare_teacher(cfg)
    train, val = build_loaders(cfg, splits)
    return train, val, len(splits.train), len(splits.classes)


def patch_datasets(md_data) -> list[str]:
    from lavid_plugin.data.datasets import DATASETS

    patched = []
    for fn_name, views in (("get_dataset", None), ("get_dataset_strong", ("weak", "strong"))):
        original = getattr(md_data, fn_name, None)
        if original is None or getattr(original, "_lavid_bridge", False):
            continue

        def dispatch(cfg, _original=original, _views=views):
            if cfg.DATASET.TYPE in DATASETS:
                return _plugin_loaders(cfg, _views)
            return _original(cfg)

        dispatch._lavid_bridge = True
        dispatch.__doc__ = f"mdistiller's {fn_name}, plus the plugin's dataset types {sorted(DATASETS)}"
        setattr(md_data, fn_name, dispatch)
        patched.append(fn_name)
    return patched


# -------------------------------------------------------------------------------------- models
def _empty_checkpoint() -> str:
    """A checkpoint with no weights for the signature 'teacher' (mdistiller always loads one)."""
    import torch

    from lavid_plugin.utils import atomic_torch_save

    path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lavid_plugin" / "no_weights.pth"
    if not path.is_file():
        atomic_torch_save({"model": {}}, path)
    return str(path)


def register_models(model_dict: dict) -> list[str]:
    from lavid_plugin.models import model_dict as plugin_models

    added = []
    for name, ctor in plugin_models.items():
        if name not in model_dict:
            model_dict[name] = (lambda num_classes, _ctor=ctor: _ctor(num_classes), None)
            added.append(name)
    model_dict[SIGNATURE_TEACHER] = (lambda num_classes: _context(None).signature(), None)
    return added + [SIGNATURE_TEACHER]


def _prepare_teacher(cfg) -> None:
    """Point mdistiller's teacher entry at this run's checkpoint (or at the signature)."""
    import mdistiller.models as md_models

    model_dict = md_models.cifar_model_dict
    cls = registry_class(cfg)
    if not cls.needs_teacher(cfg) and cfg.DISTILLER.TYPE != "LAVID":
        return
    if cfg.DISTILLER.TYPE == "LAVID" and not cls.needs_teacher(cfg):
        if cfg.DISTILLER.TEACHER != SIGNATURE_TEACHER:
            frozen = cfg.is_frozen()
            cfg.defrost()
            cfg.DISTILLER.TEACHER = SIGNATURE_TEACHER
            if frozen:
                cfg.freeze()
            print(f"[lavid bridge] LaViD alone: the teacher is the signature (DISTILLER.TEACHER {SIGNATURE_TEACHER})")
        model_dict[SIGNATURE_TEACHER] = (model_dict[SIGNATURE_TEACHER][0], _empty_checkpoint())
        return
    name = cfg.DISTILLER.TEACHER
    if name not in model_dict:
        raise LavidError(f"DISTILLER.TEACHER {name!r} is neither the plugin's nor mdistiller's model")
    if not cfg.DISTILLER.TEACHER_CKPT:
        raise LavidError(f"DISTILLER.TYPE {cfg.DISTILLER.TYPE} needs a trained {name}: set DISTILLER.TEACHER_CKPT")
    if not Path(cfg.DISTILLER.TEACHER_CKPT).is_file():
        raise LavidError(f"DISTILLER.TEACHER_CKPT {cfg.DISTILLER.TEACHER_CKPT} does not exist")
    model_dict[name] = (model_dict[name][0], str(cfg.DISTILLER.TEACHER_CKPT))


# ------------------------------------------------------------------------------------ trainers
def _two_view_trainer(base):
    class TwoViewTrainer(base):
        """``(weak, strong)`` batches -> ``distiller(image_weak=, image_strong=, target=, epoch=)``,
        the contract of the fork's ``ours`` trainer, for upstream mdistiller which has none."""

        def train_iter(self, data, epoch, train_meters):
            import time

            from mdistiller.engine.utils import accuracy

            self.optimizer.zero_grad()
            start = time.time()
            (weak, strong), target, _ = data
            weak, strong = weak.float().cuda(non_blocking=True), strong.float().cuda(non_blocking=True)
            target = target.cuda(non_blocking=True)
            preds, losses = self.distiller(image_weak=weak, image_strong=strong, target=target, epoch=epoch)
            loss = sum(v.mean() for v in losses.values())
            loss.backward()
            self.optimizer.step()
            train_meters["training_time"].update(time.time() - start)
            n = weak.size(0)
            acc1, acc5 = accuracy(preds, target, topk=(1, 5))
            train_meters["losses"].update(loss.cpu().detach().numpy().mean(), n)
            train_meters["top1"].update(acc1[0], n)
            train_meters["top5"].update(acc5[0], n)
            return "Epoch:{}| Loss:{:.4f}| Top-1:{:.3f}| Top-5:{:.3f}".format(
                epoch, train_meters["losses"].avg, train_meters["top1"].avg, train_meters["top5"].avg)

    return TwoViewTrainer


def register_trainers(trainer_dict: dict) -> list[str]:
    if "ours" in trainer_dict:
        return []
    trainer_dict["ours"] = _two_view_trainer(trainer_dict["base"])
    return ["ours"]


# ---------------------------------------------------------------------------------------- apply
def apply(verbose: bool = False) -> dict:
    """Register the plugin into the installed mdistiller (idempotent); returns what was added."""
    if mdistiller_variant() is None:
        raise LavidError("mdistiller is not installed: pip install --no-deps -e <a clone of megvii-research/mdistiller "
                         "or sunshangquan/logit-standardization-KD> (plus tensorboardX)")
    import mdistiller.dataset as md_data
    import mdistiller.distillers as md_dist
    import mdistiller.engine as md_engine
    import mdistiller.models as md_models
    from mdistiller.engine.cfg import CFG as md_cfg

    from lavid_plugin.config import CFG as plugin_cfg

    if _State.applied:
        return {}
    report = {"variant": mdistiller_variant(), "widened": widen_int_defaults(md_cfg, plugin_cfg),
              "cfg": merge_missing(md_cfg, plugin_cfg),
              "distillers": register_distillers(md_dist.distiller_dict), "datasets": patch_datasets(md_data),
              "models": register_models(md_models.cifar_model_dict),
              "trainers": register_trainers(md_engine.trainer_dict)}
    _State.applied = True
    if verbose:
        print(f"[lavid bridge] mdistiller ({report['variant']}) patched: distillers {report['distillers']}, "
              f"datasets via {report['datasets']}, models {report['models']}, trainers {report['trainers'] or 'as is'}, "
              f"{len(report['cfg'])} config keys", file=sys.stderr)
    return report


def is_applied() -> bool:
    return _State.applied
