"""The bridge, config part: mdistiller's ``CFG`` gains the plugin's nodes and keys."""

from __future__ import annotations


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


def patch_config(md_cfg) -> dict:
    from lavid_plugin.config import get_cfg_defaults

    from lavid_plugin.distillers import renamed_keys

    plugin_cfg = get_cfg_defaults()
    for old, new in renamed_keys().items():  # mdistiller's loader cannot read them as the new key: name it
        if old not in md_cfg.__dict__.get(md_cfg.RENAMED_KEYS, {}):
            md_cfg.register_renamed_key(old, new, "lavid-plugin renamed it")
    return {"widened": widen_int_defaults(md_cfg, plugin_cfg), "cfg": merge_missing(md_cfg, plugin_cfg)}
