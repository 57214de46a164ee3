"""The distiller registry: ``DISTILLER.TYPE`` (upper case) -> class, mdistiller's ``distiller_dict``.

A distiller registers itself where it is defined, with one line::

    @register("KD")
    class KD(Distiller): ...

and the package imports its module (``lavid_plugin/distillers/__init__.py``). Nothing else names it:
the trainer, the bridge and LaViD's ``BASE`` look classes up here.
"""

from __future__ import annotations

from ..errors import LavidError

distiller_dict: dict = {}


def register(name: str):
    def add(cls):
        if name in distiller_dict:
            raise ValueError(f"distiller {name!r} is registered twice: {distiller_dict[name]} and {cls}")
        distiller_dict[name] = cls
        return cls

    return add


def lookup(name: str, key: str = "DISTILLER.TYPE", exclude: tuple = ()):
    """The class registered as ``name`` (upper-cased); an unknown name lists the choices."""
    cls = distiller_dict.get(str(name).upper())
    if cls is None or str(name).upper() in exclude:
        choices = sorted(k for k in distiller_dict if k not in exclude)
        raise LavidError(f"{key} {name!r} is not a registered distiller; choices: {choices}")
    return cls
