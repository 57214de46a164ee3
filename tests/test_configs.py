"""Every config of the paper's tables merges with tools/train.py's loader and builds its distiller
on a fake dataset of its type."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fake_trees import WRITERS
from helpers import random_signature
from lavid_plugin.config import load_cfg
from lavid_plugin.data import build_splits
from lavid_plugin.distillers import distiller_dict
from lavid_plugin.engine.build import build_distiller

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs" / "lavid").glob("*/*.yaml") if p.parent.name != "demo")


def test_every_table_cell_has_its_config():
    assert subprocess.run([sys.executable, str(ROOT / "scripts" / "make_configs.py"), "--check"]).returncode == 0
    names = {str(p.relative_to(ROOT / "configs" / "lavid")) for p in CONFIGS}
    for d in ("cub", "caltech101", "flowers", "aircraft", "pets", "cars"):
        for s in ("res18", "mv2", "shuv2"):
            assert f"{d}/{s}.yaml" in names  # LaViD
            for m in ("vanilla", "kd", "rkd", "dkd", "mlkd", "ls", "lavid_ls"):
                assert f"{d}/{s}_{m}.yaml" in names
        assert f"{d}/res50_vanilla.yaml" in names
    for s in ("res18", "mv2", "shuv2"):
        assert {f"waterbirds/{s}.yaml"} | {f"waterbirds/{s}_{m}.yaml" for m in ("vanilla", "kd", "rkd", "dkd", "mlkd")} <= names
    groups = {p.parent.name for p in CONFIGS if p.parent.name.startswith("imagenet_")}
    assert len(groups) == 9
    for g in groups:
        assert {f"{g}/res18.yaml", f"{g}/res18_vanilla.yaml"} <= names
    assert len(CONFIGS) == 6 * (3 * 8 + 1) + (3 * 6 + 1) + 9 * 2


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """Per dataset (and ImageNet group): a fake tree, a signature of its classes, a ResNet-50 teacher."""
    base = tmp_path_factory.mktemp("fake")
    cache = {}

    def get(cfg):
        key = (cfg.DATASET.TYPE, cfg.DATASET.GROUP)
        if key not in cache:
            root = base / "_".join(k for k in key if k)
            if cfg.DATASET.TYPE == "imagenet_group":
                WRITERS["imagenet_group"](root, group=cfg.DATASET.GROUP)
            else:
                WRITERS[cfg.DATASET.TYPE](root)
            over = ["DATASET.ROOT", str(root)]
            splits = build_splits(load_cfg(None, ["DATASET.TYPE", key[0], "DATASET.GROUP", key[1]] + over))
            sig = root / "sig.safetensors"
            random_signature(splits.signature_classes or splits.classes, counts=(5,) * 4).save(sig)
            k = len(splits.classes)
            teacher = base / f"res50_{k}.pth"
            if not teacher.exists():
                from lavid_plugin.models import build_model

                torch.save({"model": build_model("resnet50", k).state_dict()}, teacher)
            cache[key] = over + ["LAVID.SIGNATURE", str(sig), "DISTILLER.TEACHER_CKPT", str(teacher)]
        return cache[key]

    return get


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_merges_and_builds_its_distiller(path, fake):
    cfg = load_cfg(str(path))  # as tools/train.py merges it
    opts = fake(cfg)
    cfg = load_cfg(str(path), opts)
    views = distiller_dict[cfg.DISTILLER.TYPE].views_for(cfg)
    splits = build_splits(cfg, views)
    model = build_distiller(cfg, splits.classes, len(splits.train), splits=splits)
    assert isinstance(model, distiller_dict[cfg.DISTILLER.TYPE])
    assert model.student(torch.zeros(2, 3, 32, 32))[0].shape == (2, len(splits.classes))
    if cfg.DISTILLER.TYPE == "LAVID":
        assert model.head.out_features == 20
    if "MLKD" in (cfg.DISTILLER.TYPE, cfg.LAVID.BASE):
        assert isinstance(splits.train[0][0], tuple)  # weak/strong views
