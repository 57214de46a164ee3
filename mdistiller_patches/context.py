"""The build context of the run mdistiller is building, derived from its config.

mdistiller's ``tools/train.py`` calls ``get_dataset(cfg)`` and then the distiller's constructor
``(student, teacher, cfg)``; only ``cfg`` connects the two. :func:`context_for` returns the
:class:`~lavid_plugin.engine.build.BuildContext` of a config: the one the patched ``get_dataset``
built (:func:`remember`), or, when a distiller is built without it, one built from the config
itself, so the order of the two calls does not matter.
"""

from __future__ import annotations

_contexts: dict = {}  # cfg.dump() -> BuildContext


def remember(cfg, ctx) -> None:
    _contexts.clear()  # one run per process: keep only the latest
    _contexts[cfg.dump()] = ctx


def context_for(cfg):
    key = cfg.dump()
    if key not in _contexts:
        from lavid_plugin.data import build_splits
        from lavid_plugin.engine.build import BuildContext

        remember(cfg, BuildContext.from_splits(cfg, build_splits(cfg)))
    return _contexts[key]
