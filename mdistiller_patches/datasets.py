"""The bridge, dataset part: mdistiller's ``get_dataset`` / ``get_dataset_strong`` read the plugin's
dataset types through the plugin's one data set-up (:func:`lavid_plugin.engine.build.setup_data`)."""

from __future__ import annotations

from .context import remember


def plugin_get_dataset(cfg, views=None):
    """mdistiller's ``(train_loader, val_loader, num_data, num_classes)`` for a plugin dataset type."""
    from lavid_plugin.engine.build import setup_data

    from .distillers import registry_class
    from .models import point_teacher

    cls = registry_class(cfg)
    run = setup_data(cfg, cls, views=views)
    if run.splits.test.groups is not None:  # mdistiller's validate() unpacks (image, target)
        run.splits.test.groups = None
    point_teacher(cfg, cls)  # may set DISTILLER.TEACHER: before the context is keyed by the config
    remember(cfg, run.context)
    return run.train_loader, run.val_loader, len(run.splits.train), len(run.splits.classes)


def patch_datasets(md_data) -> list[str]:
    from lavid_plugin.data.datasets import DATASETS

    patched = []
    for fn_name, views in (("get_dataset", None), ("get_dataset_strong", ("weak", "strong"))):
        original = getattr(md_data, fn_name, None)
        if original is None or getattr(original, "_lavid_bridge", False):
            continue

        def dispatch(cfg, _original=original, _views=views):
            if cfg.DATASET.TYPE in DATASETS:
                return plugin_get_dataset(cfg, _views)
            return _original(cfg)

        dispatch._lavid_bridge = True
        dispatch.__doc__ = f"mdistiller's {fn_name}, plus the plugin's dataset types {sorted(DATASETS)}"
        setattr(md_data, fn_name, dispatch)
        patched.append(fn_name)
    return patched
