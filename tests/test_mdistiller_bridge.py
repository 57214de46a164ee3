"""The bridge, against the real mdistiller (upstream or the logit-standardization fork, whichever is
installed): its CFG merges the plugin's configs, its get_dataset loads the plugin's datasets, and one
iteration of each plugin distiller runs through its own trainer's ``train_iter`` (on CPU: ``.cuda()``
is made a no-op, nothing else changes)."""

import math
from pathlib import Path

import pytest
import torch

from mdistiller_support import require_mdistiller

VARIANT = require_mdistiller()

from helpers import random_signature, small_demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def md():
    import mdistiller_patches

    mdistiller_patches.apply()
    import mdistiller.dataset as data
    import mdistiller.distillers as distillers
    import mdistiller.engine as engine
    import mdistiller.models as models
    from mdistiller.engine.cfg import CFG

    return type("MD", (), {"CFG": CFG, "data": data, "distiller_dict": distillers.distiller_dict,
                           "model_dict": models.cifar_model_dict, "trainer_dict": engine.trainer_dict})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from lavid_plugin.models import build_model

    root = tmp_path_factory.mktemp("bridge")
    names = small_demo(root / "demo", train=2, test=1)
    random_signature(names, counts=(5, 5, 5)).save(root / "sig.safetensors")
    torch.save({"model": build_model("resnet50", len(names)).state_dict()}, root / "r50.pth")
    from lavid_plugin.image_teacher import SampleBank

    ids = sorted(p.relative_to(root / "demo").as_posix() for p in (root / "demo" / "train").rglob("*.png"))
    SampleBank(ids, {"p_yes": torch.rand(len(ids), 4)}).save(root / "aspects.safetensors")
    SampleBank(ids, {"last-1": torch.randn(len(ids), 16).half()}).save(root / "features.safetensors")
    return root


def md_cfg(md, demo, config, *opts):
    cfg = md.CFG.clone()
    cfg.merge_from_file(str(ROOT / "configs" / "lavid" / "demo" / config))
    cfg.merge_from_list(["DATASET.ROOT", str(demo / "demo"), "DATASET.IMAGE_SIZE", 32, "DATASET.NUM_WORKERS", 0,
                         "SOLVER.BATCH_SIZE", 6, "LAVID.SIGNATURE", str(demo / "sig.safetensors"),
                         "DISTILLER.TEACHER_CKPT", str(demo / "r50.pth"), *opts])
    cfg.freeze()
    return cfg


def test_mdistillers_cfg_merges_every_plugin_config(md):
    configs = sorted((ROOT / "configs" / "lavid").glob("*/*.yaml"))
    assert len(configs) > 180
    for path in configs:
        cfg = md.CFG.clone()
        cfg.merge_from_file(str(path))  # raises on an unknown key or a type mismatch
        assert cfg.DATASET.TYPE and cfg.DISTILLER.TYPE in md.distiller_dict, path


def test_mdistillers_get_dataset_loads_the_demo(md, demo):
    cfg = md_cfg(md, demo, "res18_vanilla.yaml")
    train, val, num_data, num_classes = md.data.get_dataset(cfg)
    assert (num_data, num_classes) == (24, 12)
    image, target, index = next(iter(train))
    assert image.shape == (6, 3, 32, 32) and target.shape == index.shape == (6,)
    image, target = next(iter(val))
    assert image.shape[1:] == (3, 32, 32)


# (DISTILLER.TYPE, SOLVER.TRAINER, extra overrides): every plugin distiller, and LaViD on top of a base
CASES = [
    ("PLUGIN_KD", "base", []),
    ("PLUGIN_DKD", "base", []),
    ("PLUGIN_RKD", "base", []),
    ("PLUGIN_MLKD", "ours", []),
    ("LAVID", "base", ["DISTILLER.TEACHER", "LLMSignature"]),
    ("LAVID", "base", ["LAVID.BASE", "KD"]),
    ("LAVID", "ours", ["LAVID.BASE", "MLKD", "EXPERIMENT.LOGIT_STAND", True]),
    # per-image teacher banks: the bridge's `sample` trainer hands the distiller the batch's index
    ("MAKD", "sample", ["MAKD.BANK", "BANK/aspects.safetensors"]),
    ("PLUGIN_FITNET_MLLM", "sample", ["FITNET_MLLM.BANK", "BANK/features.safetensors", "FITNET_MLLM.LAYER", -1]),
    ("CRD_MLLM", "sample", ["CRD_MLLM.BANK", "BANK/features.safetensors", "CRD_MLLM.LAYER", -1, "CRD_MLLM.NCE.K", 8]),
]
if VARIANT == "fork":  # the fork's own MLKD, on the plugin's weak/strong loader
    CASES.append(("MLKD", "ours", ["EXPERIMENT.LOGIT_STAND", True]))


@pytest.mark.parametrize("kind,trainer,opts", CASES, ids=lambda c: str(c) if not isinstance(c, list) else "-".join(map(str, c)))
def test_one_train_iter_as_mdistiller_runs_it(md, demo, kind, trainer, opts, monkeypatch):
    from mdistiller.engine.utils import AverageMeter, load_checkpoint

    opts = [str(demo / o[len("BANK/"):]) if isinstance(o, str) and o.startswith("BANK/") else o for o in opts]
    cfg = md_cfg(md, demo, "res18.yaml", "DISTILLER.TYPE", kind, "SOLVER.TRAINER", trainer,
                 "DISTILLER.TEACHER", "resnet50", *opts)
    # what mdistiller's tools/train.py does (the fork picks get_dataset_strong for MLKD)
    getter = md.data.get_dataset_strong if kind == "MLKD" and VARIANT == "fork" else md.data.get_dataset
    train_loader, _, num_data, num_classes = getter(cfg)
    student = md.model_dict[cfg.DISTILLER.STUDENT][0](num_classes=num_classes)
    net, path = md.model_dict[cfg.DISTILLER.TEACHER]
    assert path is not None
    teacher = net(num_classes=num_classes)
    teacher.load_state_dict(load_checkpoint(path)["model"])
    distiller = torch.nn.DataParallel(md.distiller_dict[cfg.DISTILLER.TYPE](student, teacher, cfg))
    t = object.__new__(md.trainer_dict[cfg.SOLVER.TRAINER])  # its __init__ only opens loggers
    t.cfg, t.distiller = cfg, distiller
    t.optimizer = t.init_optimizer(cfg)
    distiller.train()
    before = [p.detach().clone() for p in student.parameters()]
    meters = {k: AverageMeter() for k in ("training_time", "data_time", "losses", "top1", "top5")}
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    t.train_iter(next(iter(train_loader)), 1, meters)
    assert math.isfinite(float(meters["losses"].avg))
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_lavid_alone_needs_no_visual_teacher_checkpoint(md, demo):
    from mdistiller.engine.utils import load_checkpoint

    cfg = md_cfg(md, demo, "res18.yaml", "DISTILLER.TEACHER_CKPT", "")
    _, _, _, num_classes = md.data.get_dataset(cfg)
    net, path = md.model_dict[cfg.DISTILLER.TEACHER]
    teacher = net(num_classes=num_classes)
    teacher.load_state_dict(load_checkpoint(path)["model"])
    distiller = md.distiller_dict["LAVID"](md.model_dict["resnet18"][0](num_classes=num_classes), teacher, cfg)
    assert distiller.teacher is distiller.signature and distiller.signature.num_classes == 12


def test_table3_lavid_with_the_1000_way_head_trains_under_mdistillers_trainer(md, tmp_path, monkeypatch):
    """An ImageNet group's config (1000-way head): the bridge's ``sample`` trainer hands LaViD the batch's
    indices, by which it looks up each image's row of the group's signature."""
    from fake_trees import write_imagenet_group
    from mdistiller.engine.utils import AverageMeter

    _, _, names, _ = write_imagenet_group(tmp_path / "in")
    random_signature(names).save(tmp_path / "sig.safetensors")
    cfg = md.CFG.clone()
    cfg.merge_from_file(str(ROOT / "configs" / "lavid" / "imagenet_bird" / "res18.yaml"))
    cfg.merge_from_list(["DATASET.ROOT", str(tmp_path / "in"), "DATASET.IMAGE_SIZE", 32, "DATASET.NUM_WORKERS", 0,
                         "SOLVER.BATCH_SIZE", 6, "LAVID.SIGNATURE", str(tmp_path / "sig.safetensors")])
    cfg.freeze()
    assert (cfg.SOLVER.TRAINER, cfg.DATASET.IMAGENET_HEAD) == ("sample", "full")
    train_loader, _, num_data, num_classes = md.data.get_dataset(cfg)
    assert num_classes == 1000 and num_data == 2 * len(names)
    student = md.model_dict["resnet18"][0](num_classes=num_classes)
    distiller = torch.nn.DataParallel(md.distiller_dict["LAVID"](student, None, cfg))
    t = object.__new__(md.trainer_dict[cfg.SOLVER.TRAINER])
    t.cfg, t.distiller = cfg, distiller
    t.optimizer = t.init_optimizer(cfg)
    distiller.train()
    before = [p.detach().clone() for p in distiller.module.head.parameters()]
    meters = {k: AverageMeter() for k in ("training_time", "data_time", "losses", "top1", "top5")}
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    t.train_iter(next(iter(train_loader)), 1, meters)
    assert math.isfinite(float(meters["losses"].avg))
    assert any(not torch.equal(a, b) for a, b in zip(before, distiller.module.head.parameters()))


def test_a_distiller_built_before_get_dataset_reads_its_signature_aligned(md, demo):
    import json

    cfg = md_cfg(md, demo, "res18.yaml", "EXPERIMENT.NAME", "built-first")  # a config get_dataset never saw
    names = json.loads((demo / "demo" / "classes.json").read_text())["classes"]
    distiller = md.distiller_dict["LAVID"](md.model_dict["resnet18"][0](num_classes=len(names)), None, cfg)
    assert distiller.signature.class_names == names and distiller.teacher is distiller.signature


def test_a_distillation_run_without_teacher_checkpoint_is_a_clear_error(md, demo):
    from lavid_plugin.errors import LavidError

    cfg = md_cfg(md, demo, "res18_vanilla.yaml", "DISTILLER.TYPE", "PLUGIN_KD", "DISTILLER.TEACHER", "resnet50",
                 "DISTILLER.TEACHER_CKPT", "")
    with pytest.raises(LavidError, match="TEACHER_CKPT"):
        md.data.get_dataset(cfg)


def test_the_enable_hook_patches_mdistiller_on_import(tmp_path):
    import subprocess
    import sys

    from mdistiller_patches.__main__ import PTH_LINE

    # the .pth line, run as site.py would, then a plain `import mdistiller` as its tools/train.py does
    code = PTH_LINE + "from mdistiller.distillers import distiller_dict\nfrom mdistiller.engine.cfg import CFG\n" \
        "print('LAVID' in distiller_dict, 'LAVID' in CFG)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "True True", out.stderr


@pytest.mark.parametrize("extra", [[], ["LAVID.BASE", "MLKD", "EXPERIMENT.LOGIT_STAND", "True", "SOLVER.TRAINER", "ours",
                                          "DISTILLER.TEACHER", "resnet50"]], ids=["lavid", "lavid_mlkd_ls_r50"])
def test_mdistillers_own_train_py_runs_a_lavid_demo_config(demo, tmp_path, extra):
    """Its unmodified tools/train.py, with the bridge's start-up hook and `.cuda()` made a no-op (CPU)."""
    import subprocess
    import sys

    import mdistiller

    script = Path(mdistiller.__file__).resolve().parents[1] / "tools" / "train.py"
    if not script.is_file():
        pytest.skip(f"mdistiller is installed without its tools/train.py ({script})")
    preamble = ("import runpy, sys, torch\n"
                "torch.Tensor.cuda = lambda self, *a, **k: self\n"
                "torch.nn.Module.cuda = lambda self, *a, **k: self\n"
                "import mdistiller_patches._autoload\n"
                "sys.argv = sys.argv[1:]\n"
                "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    cmd = [sys.executable, "-c", preamble, str(script), "--cfg", str(ROOT / "configs/lavid/demo/res18.yaml"),
           "SOLVER.EPOCHS", "1", "LOG.PREFIX", "out", "LOG.WANDB", "False", "DATASET.NUM_WORKERS", "0",
           "DATASET.ROOT", str(demo / "demo"), "DATASET.IMAGE_SIZE", "32",
           "LAVID.SIGNATURE", str(demo / "sig.safetensors"), "DISTILLER.TEACHER_CKPT", str(demo / "r50.pth"), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = list((tmp_path / "out").rglob("worklog.txt"))
    assert len(logs) == 1 and "best_acc" in logs[0].read_text()
    assert "Extra parameters of LAVID" in out.stdout


def test_check_mdistiller_cuda_script_fails_clearly_without_a_gpu():
    import subprocess
    import sys

    import mdistiller

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run scripts/check_mdistiller_cuda.sh itself")
    clone = Path(mdistiller.__file__).resolve().parents[1]
    out = subprocess.run(["bash", str(ROOT / "scripts" / "check_mdistiller_cuda.sh"), str(clone)],
                         capture_output=True, text=True, env={**__import__("os").environ, "PYTHON": sys.executable})
    assert out.returncode == 3 and "no CUDA device" in out.stderr
