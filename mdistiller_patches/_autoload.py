"""Imported by the ``.pth`` hook that ``python -m mdistiller_patches enable`` writes: applies the
bridge right after the ``mdistiller`` package is first imported, so its unmodified ``tools/train.py``
sees the plugin. ``LAVID_MDISTILLER_BRIDGE=0`` turns it off for one process."""

import importlib.abc
import importlib.util
import os
import sys


class _AfterMdistillerImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "mdistiller":
            return None
        sys.meta_path.remove(self)  # one shot; the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            import mdistiller_patches

            mdistiller_patches.apply(verbose=True)

        spec.loader.exec_module = exec_then_patch
        return spec


if os.environ.get("LAVID_MDISTILLER_BRIDGE", "1") != "0" and "mdistiller" not in sys.modules:
    sys.meta_path.insert(0, _AfterMdistillerImport())
