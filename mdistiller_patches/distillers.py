"""The bridge, distiller part: the plugin's distillers in mdistiller's ``distiller_dict``, built
with mdistiller's constructor ``(student, teacher, cfg)``."""

from __future__ import annotations

from lavid_plugin.errors import LavidError

from .context import context_for


def bridged(cls):
    """``cls`` behind mdistiller's constructor: ``Bridged(student, teacher, cfg)`` returns
    ``cls.build(student, teacher, cfg, context)``, so a distiller that reads a precomputed teacher
    gets it aligned to the run's dataset. A teacher-placeholder (:mod:`.models`) becomes None."""
    from .models import TeacherPlaceholder

    class Bridged(cls):
        def __new__(klass, student, teacher=None, cfg=None, *args, **kwargs):
            if isinstance(teacher, TeacherPlaceholder):
                teacher = None
            return cls.build(student, teacher, cfg, context_for(cfg))  # a `cls`, so __init__ is not rerun

    Bridged.__name__ = Bridged.__qualname__ = f"Bridged{cls.__name__}"
    Bridged.__doc__ = cls.__doc__
    return Bridged


def register_distillers(md_dict: dict) -> list[str]:
    """``LAVID``, ``PLUGIN_<NAME>`` for the plugin's others, and ``<NAME>`` where mdistiller has none."""
    from lavid_plugin.distillers import PLUGIN_DISTILLERS, distiller_dict

    added = {}
    for name in PLUGIN_DISTILLERS:
        if name == "NONE":
            continue
        cls = bridged(distiller_dict[name])
        added[name if name == "LAVID" else f"PLUGIN_{name}"] = cls
        if name not in md_dict:
            added[name] = cls
    md_dict.update(added)
    return sorted(added)


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
