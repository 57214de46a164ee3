"""Stage 2 distillers with mdistiller's contract, and their registry ``distiller_dict``.

Every module of this folder is imported here (a new method is a new file: nothing to add to a list).
Each registers its class where it is defined (``@register("NAME")``, :mod:`.registry`); the class
declares its config node (``NODE``, ``DEFAULTS``) and refines the hooks of
:class:`~._base.Distiller` instead of ``if TYPE == ...`` chains elsewhere: ``needs_teacher(cfg)``,
``needs_sample_index(cfg)``, ``views_for(cfg)`` (``("image",)`` or ``("weak", "strong")``: what the
train loader must yield), ``wrap_train_set(cfg, dataset)`` (e.g. CRD's contrastive sampling),
``precomputed_teacher(cfg)`` (the per-class or per-sample teacher file it reads, see
:mod:`lavid_plugin.teacher_files`) and ``build(student, teacher, cfg, ctx)``.

When mdistiller (or its logit-standardization fork) is installed, its whole zoo is registered too
(:mod:`.zoo`): ``MD_<NAME>`` for each of its distillers, and ``<NAME>`` where the plugin has none.
"""

import importlib
import pkgutil

from . import zoo
from ._base import Distiller, Vanilla
from .registry import distiller_dict, lookup, method_nodes, register, renamed_keys


def _import_method_files() -> None:
    """Import every ``<NAME>.py`` of this folder (each registers its distiller) and export its public
    names: the classes and their pure loss functions (``kd_loss``, ``lavid_loss``, ...)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in ("registry", "zoo"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for cls in distiller_dict.values():
            if cls.__module__ == module.__name__:
                globals()[cls.__name__] = cls
        for name, obj in vars(module).items():
            if name.endswith("_loss") and callable(obj) and getattr(obj, "__module__", None) == module.__name__:
                globals()[name] = obj


_import_method_files()

#: plugin-native names; the rest of distiller_dict comes from mdistiller's zoo when it is installed
PLUGIN_DISTILLERS = tuple(distiller_dict)
MDISTILLER_DISTILLERS = tuple(zoo.register(distiller_dict))
