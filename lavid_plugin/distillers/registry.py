"""The distiller registry: ``DISTILLER.TYPE`` (upper case) -> class, mdistiller's ``distiller_dict``.

A distiller registers itself where it is defined, with one line::

    @register("KD")
    class KD(Distiller): ...

and the package imports every module of its folder (``lavid_plugin/distillers/__init__.py``).
Nothing else names it: the config schema (:func:`method_nodes`), the tables, the trainer, the
bridge and LaViD's ``BASE`` look classes up here.
"""

from __future__ import annotations

from ..errors import LavidError

distiller_dict: dict = {}


def register(name: str):
    def add(cls):
        if name in distiller_dict:
            raise LavidError(f"distiller {name!r} is registered twice: {distiller_dict[name]} and {cls}")
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


def renamed_keys(registry: dict | None = None) -> dict:
    """``{"NODE.OLD.KEY": "NODE.NEW.KEY"}``: the deprecated config keys the registered classes still accept."""
    out = {}
    for cls in (distiller_dict if registry is None else registry).values():
        node = getattr(cls, "NODE", None)
        for old, new in (getattr(cls, "RENAMED_KEYS", None) or {}).items():
            out[f"{node}.{old}"] = f"{node}.{new}"
    return out


def method_nodes(registry: dict | None = None) -> dict:
    """``{NODE: DEFAULTS}`` of the registered classes that declare a config node. Two classes may
    share a node (mdistiller's zoo entry beside the plugin's) only with the same defaults."""
    nodes: dict = {}
    owner: dict = {}
    for name, cls in (distiller_dict if registry is None else registry).items():
        node = getattr(cls, "NODE", None)
        if not node or not getattr(cls, "DEFAULTS", None):
            continue
        if node in nodes and nodes[node] != cls.DEFAULTS:
            raise LavidError(f"distillers {owner[node]} and {name} declare config node {node} with different "
                             f"defaults")
        nodes.setdefault(node, cls.DEFAULTS)
        owner.setdefault(node, name)
    return nodes
