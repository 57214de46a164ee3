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

The package is split by what it patches: :mod:`.config`, :mod:`.distillers`, :mod:`.datasets`,
:mod:`.models`, :mod:`.trainers`; :mod:`.context` derives the plugin's build context from the run's
config, so a distiller may be built before or after ``get_dataset``.

mdistiller's own trainers do not pass sample indices to distillers: what looks its teacher up per image
(a bank; LaViD's targets on Waterbirds, each image's CUB species, and on ImageNet groups under
``DATASET.IMAGENET_HEAD full``) runs with ``SOLVER.TRAINER sample``, as the generated configs set it.
"""

from __future__ import annotations


from lavid_plugin.errors import LavidError
from lavid_plugin.utils import get_logger

PTH_NAME = "lavid_mdistiller_bridge.pth"
_applied: dict = {}  # what apply() added, once it has run (it is idempotent)


def mdistiller_variant() -> str | None:
    """``"fork"`` (logit-standardization-KD), ``"upstream"`` (megvii-research), or None."""
    try:
        from mdistiller.engine.cfg import CFG
    except ImportError:
        return None
    return "fork" if "LOGIT_STAND" in CFG.EXPERIMENT else "upstream"


def apply(verbose: bool = False) -> dict:
    """Register the plugin into the installed mdistiller (idempotent); returns what was added."""
    if mdistiller_variant() is None:
        raise LavidError("mdistiller is not installed: pip install --no-deps -e <a clone of megvii-research/mdistiller "
                         "or sunshangquan/logit-standardization-KD> (plus tensorboardX)")
    if _applied:
        return dict(_applied)
    import mdistiller.dataset as md_data
    import mdistiller.distillers as md_dist
    import mdistiller.engine as md_engine
    import mdistiller.models as md_models
    from mdistiller.engine.cfg import CFG as md_cfg

    from .config import patch_config
    from .datasets import patch_datasets
    from .distillers import register_distillers
    from .models import register_models
    from .trainers import register_trainers

    _applied.update(variant=mdistiller_variant(), **patch_config(md_cfg),
                    distillers=register_distillers(md_dist.distiller_dict), datasets=patch_datasets(md_data),
                    models=register_models(md_models.cifar_model_dict),
                    trainers=register_trainers(md_engine.trainer_dict))
    if verbose:
        r = _applied
        get_logger("lavid.bridge").warning(
            f"mdistiller ({r['variant']}) patched: distillers {r['distillers']}, datasets via {r['datasets']}, "
            f"models {r['models']}, trainers {r['trainers'] or 'as is'}, {len(r['cfg'])} config keys")
    return dict(_applied)
