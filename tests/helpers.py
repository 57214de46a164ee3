"""Shared test builders: tiny configs, signatures and the demo tree."""

import torch

from lavid_plugin.config import load_cfg
from lavid_plugin.signature.llm_signature import LLMSignature


def tiny_cfg(**over):
    opts = []
    for k, v in over.items():
        opts += [k.replace("__", "."), str(v) if not isinstance(v, str) else v]
    return load_cfg(None, opts)


def random_signature(class_names, counts=(3, 2, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    parts = [torch.softmax(torch.randn(len(class_names), m, generator=g), -1) for m in counts]
    offsets = [0]
    for m in counts:
        offsets.append(offsets[-1] + m)
    return LLMSignature(class_names, torch.cat(parts, 1), offsets, provenance={"source": "test"})


def small_demo(root, train=4, test=2):
    from lavid_plugin.data.demo_birds import demo_classes, ensure_demo_dataset

    ensure_demo_dataset(root, train_per_class=train, test_per_class=test)
    return [n for n, _ in demo_classes()]


def load_script(name):
    """A module of scripts/ (benchmarks' and tests' shared baselines), imported by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
