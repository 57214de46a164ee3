"""The configs under configs/lavid/ are views of lavid_plugin/tables.py: every cell has its file, every
file is its cell's data, each dataset's signature aligns, and one distiller per method x student builds.

Configs are checked as data (cheap); models are built once per distinct (method, student) pair."""

import re
from pathlib import Path

import pytest
import torch

from fake_trees import WRITERS
from helpers import random_signature
from lavid_plugin import tables
from lavid_plugin.config import load_cfg
from lavid_plugin.data import build_splits
from lavid_plugin.data.datasets import DATASETS
from lavid_plugin.distillers import distiller_dict
from lavid_plugin.engine.build import BuildContext, build_distiller, distiller_class
from lavid_plugin.errors import LavidError
from lavid_plugin.image_teacher import SampleBank

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "lavid"
CONFIGS = sorted(p for p in CONFIG_DIR.glob("*/*.yaml") if p.parent.name != "demo")


def test_every_table_cell_has_its_config():
    from helpers import load_script

    assert load_script("make_configs").main(["--check"]) == 0
    names = {str(p.relative_to(CONFIG_DIR)) for p in CONFIGS}
    assert names == {c.path for c in tables.all_cells()}
    for d in ("cub", "caltech101", "flowers", "aircraft", "pets", "cars"):
        for s in ("res18", "mv2", "shuv2"):
            assert f"{d}/{s}.yaml" in names  # LaViD
            for m in ("vanilla", "kd", "rkd", "dkd", "mlkd", "ls", "makd", "fitnet_llava", "crd_llava", "lavid_ls"):
                assert f"{d}/{s}_{m}.yaml" in names
            for m in ("fitnet", "crd"):  # Table B
                assert {f"{d}/{s}_{m}_llava_l{k}.yaml" for k in (1, 6, 12, 18, 24, 30)} <= names
        assert f"{d}/res50_vanilla.yaml" in names
    for s in ("res18", "mv2", "shuv2"):
        assert {f"waterbirds/{s}.yaml"} | {f"waterbirds/{s}_{m}.yaml" for m in ("vanilla", "kd", "rkd", "dkd", "mlkd")} <= names
    groups = {p.parent.name for p in CONFIGS if p.parent.name.startswith("imagenet_")}
    assert len(groups) == 9
    for g in groups:
        assert {f"{g}/res18.yaml", f"{g}/res18_vanilla.yaml"} <= names
    for d in ("cub", "caltech101", "flowers", "aircraft", "pets", "cars"):
        assert {f"{d}/{s}{m}.yaml" for s in ("vit_b16", "clip_b16") for m in ("", "_vanilla")} <= names  # Table 2
        assert {f"{d}/res18_emb_minilm.yaml", f"{d}/res18_emb_bert.yaml"} <= names  # Table 5 (its LaViD row: Table 1's)
    # Table 2: ViT-B/16 under the paper's and the authors' code's schedules, and CLIP (x vanilla / LaViD)
    assert len(CONFIGS) == 6 * (3 * 11 + 1) + (3 * 6 + 1) + 9 * 2 + 6 * 3 * 2 * 6 + 6 * 3 * 2 + 6 * 2


def test_each_config_merges_and_is_its_cells_data():
    for path in CONFIGS:
        cfg = load_cfg(str(path))  # as tools/train.py merges it
        cell = tables.cell_from_tag(cfg.EXPERIMENT.TAG)
        rel = str(path.relative_to(CONFIG_DIR))
        assert cell is not None and cell.path == rel, rel
        assert (cfg.DATASET.TYPE, cfg.DATASET.GROUP) == (cell.dataset, cell.group), rel
        assert cfg.DATASET.TYPE in DATASETS and cfg.DISTILLER.TYPE in distiller_dict, rel
        assert cfg.DISTILLER.STUDENT == tables.STUDENTS[cell.student], rel
        assert (cfg.EXPERIMENT.PROJECT, cfg.EXPERIMENT.NAME) == (cell.project, f"{cell.student}_{cell.method}"), rel
        assert path.stem == (cell.student if cell.method == "lavid" else cell.name), rel
        teacher = cell.teacher()
        assert (cfg.DISTILLER.TEACHER_CKPT == f"./output/{teacher.project}/res50_vanilla/student_best") \
            == cell.needs_visual_teacher, rel
        assert bool(cfg.LAVID.SIGNATURE) == (cell.method in tables.READS_SIGNATURE), rel
        if cell.dataset == "imagenet_group":
            assert (cfg.SOLVER.EPOCHS, cfg.SOLVER.BATCH_SIZE, cfg.SOLVER.LR) == (100, 512, 0.2), rel
            assert cfg.DATASET.IMAGENET_HEAD == "full", rel  # Table 3: the authors' 1000-way head
        elif cell.student in tables.STUDENT_RECIPES:  # Table 2's transformers
            recipe = tables.STUDENT_RECIPES[cell.student]["SOLVER"]
            assert all(cfg.SOLVER[k] == v for k, v in recipe.items()), rel
            assert cfg.SOLVER.SCHEDULER == ("step" if cell.student == "vit_b16_authors" else "cosine"), rel
        else:  # the paper's fine-grained recipe
            assert (cfg.SOLVER.EPOCHS, cfg.SOLVER.BATCH_SIZE, cfg.SOLVER.LR, list(cfg.SOLVER.LR_DECAY_STAGES),
                    cfg.SOLVER.WEIGHT_DECAY) == (240, 16, 0.01, [150, 180, 210], 0.0005), rel
        for node in ("MAKD", "FITNET_MLLM", "CRD_MLLM"):
            assert bool(cfg[node].BANK) == (cell.method in tables.READS_BANK and tables.READS_BANK[cell.method][0] == node)
        if cfg.DISTILLER.TYPE in ("FITNET_MLLM", "CRD_MLLM"):
            layer = re.search(r"_l(\d+)$", cell.method)  # Table B's layer; Table 1: -12
            assert cfg[cfg.DISTILLER.TYPE].LAYER == (-int(layer.group(1)) if layer else -12), rel
        if cfg.EXPERIMENT.LOGIT_STAND:
            assert cell.method in ("ls", "lavid_ls"), rel


@pytest.fixture(scope="session")
def fake(tmp_path_factory):
    """Per dataset (and ImageNet group): a fake tree, a signature of its teacher classes, a ResNet-50."""
    base = tmp_path_factory.mktemp("fake")
    cache = {}

    def get(cfg):
        key = (cfg.DATASET.TYPE, cfg.DATASET.GROUP)
        if key not in cache:
            root = base / "_".join(k for k in key if k)
            WRITERS[key[0]](root, **({"group": key[1]} if key[1] else {}))
            over = ["DATASET.ROOT", str(root)]
            splits = build_splits(load_cfg(None, ["DATASET.TYPE", key[0], "DATASET.GROUP", key[1]] + over))
            sig = root / "sig.safetensors"
            random_signature(splits.signature_classes or splits.classes, counts=(5,) * 4).save(sig)
            teacher = base / f"res50_{len(splits.classes)}.pth"
            if not teacher.exists():
                from lavid_plugin.models import build_model

                # every key and shape of a ResNet-50, each tensor one stored zero expanded (94 KB, not 94 MB):
                # what is checked here is that the config's teacher loads and its distiller builds
                state = build_model("resnet50", len(splits.classes)).state_dict()
                torch.save({"model": {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}},
                           teacher)
            ids = BuildContext.from_splits(load_cfg(None, ["DATASET.TYPE", key[0], "DATASET.GROUP", key[1]] + over),
                                           splits).sample_ids
            feats = {f"{t}{layer}": torch.randn(len(ids), 24).half() for t in ("last", "mean")
                     for layer in tables.TABLE_B_LAYERS}
            SampleBank(ids, feats).save(root / "features.safetensors")
            SampleBank(ids, {"p_yes": torch.rand(len(ids), 7)}).save(root / "aspects.safetensors")
            cache[key] = over + ["LAVID.SIGNATURE", str(sig), "DISTILLER.TEACHER_CKPT", str(teacher),
                                 "MAKD.BANK", str(root / "aspects.safetensors"),
                                 "FITNET_MLLM.BANK", str(root / "features.safetensors"),
                                 "CRD_MLLM.BANK", str(root / "features.safetensors")]
        return cache[key]

    return get


def _setup(path, fake, *extra):
    from lavid_plugin.engine.build import setup_data

    cfg = load_cfg(str(path), fake(load_cfg(str(path))) + ["DATASET.NUM_WORKERS", "0", *extra])
    return cfg, setup_data(cfg)


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    """Stand-ins for Table 2's starting weights: a toy-width vit_b_16 with its weight file, a tiny CLIP folder."""
    import torchvision.models as tvm

    from lavid_plugin.models.tiny_clip import write_tiny_clip

    def small(weights=None, image_size=224):
        return tvm.VisionTransformer(image_size=image_size, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32,
                                     mlp_dim=64)

    monkeypatch.setattr(tvm, "vit_b_16", small)
    torch.save(small(image_size=32).state_dict(), tmp_path / "vit.pth")
    return {"vit_b16": ["DISTILLER.STUDENT_CKPT", str(tmp_path / "vit.pth"), "DATASET.IMAGE_SIZE", "32"],
            "clip_b16": ["DISTILLER.STUDENT_CKPT", str(write_tiny_clip(tmp_path / "clip")), "DATASET.IMAGE_SIZE", "32"]}


LAVID_PER_DATASET = sorted({CONFIG_DIR / c.path for c in tables.all_cells() if c.method == "lavid"})


@pytest.mark.parametrize("path", LAVID_PER_DATASET, ids=lambda p: p.parent.name)
def test_each_datasets_signature_aligns_to_its_fake_tree(path, fake):
    cfg, run = _setup(path, fake)
    loaded = run.context.load_teacher(distiller_class(cfg).precomputed_teacher(cfg))
    want = run.splits.signature_classes or run.splits.classes
    assert loaded.table.class_names == want and loaded.table.dim == 20
    # per-sample rows where the label is not the signature's class: Waterbirds (CUB species), ImageNet's 1000-way head
    assert (loaded.sample_rows is not None) == (cfg.DATASET.TYPE in ("waterbirds", "imagenet_group"))


def _first_config_per_method_and_student():
    out = {}
    for c in tables.all_cells():
        out.setdefault((c.method, c.student), CONFIG_DIR / c.path)
    return sorted(out.values())


@pytest.mark.parametrize("path", _first_config_per_method_and_student(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_one_distiller_per_method_and_student_builds(path, fake, pretrained):
    cfg, run = _setup(path, fake, *pretrained.get(load_cfg(str(path)).DISTILLER.STUDENT, []))
    model = build_distiller(cfg, run.context)
    assert isinstance(model, distiller_dict[cfg.DISTILLER.TYPE])
    assert model.student(torch.zeros(2, 3, 32, 32))[0].shape == (2, len(run.splits.classes))
    if cfg.DISTILLER.TYPE == "LAVID":
        assert model.head.out_features == 20
    if cfg.DISTILLER.TYPE == "MAKD":
        assert model.aspect_head.out_features == 7
    if cfg.DISTILLER.TYPE in ("FITNET_MLLM", "CRD_MLLM"):
        assert model.key == f"last{cfg[cfg.DISTILLER.TYPE].LAYER}" and len(model.bank) == len(run.splits.train)
    assert distiller_class(cfg).needs_teacher(cfg) == tables.cell_from_tag(cfg.EXPERIMENT.TAG).needs_visual_teacher
    if "MLKD" in (cfg.DISTILLER.TYPE, cfg.LAVID.BASE):
        assert isinstance(run.splits.train[0][0], tuple)  # weak/strong views
    assert isinstance(run.context, BuildContext) and run.context.num_data == len(run.splits.train)


def test_a_renamed_key_is_read_under_its_new_name_with_one_warning(tmp_path, capsys):
    import lavid_plugin.config as config

    config._warned_renames.discard("LAVID.LOSS.CE_WEIGHT")
    (tmp_path / "old.yaml").write_text("DISTILLER: {TYPE: LAVID}\nLAVID: {LOSS: {CE_WEIGHT: 0.5, LAVID_WEIGHT: 20}}\n")
    cfg = load_cfg(str(tmp_path / "old.yaml"))
    assert cfg.LAVID.LOSS.BASE_WEIGHT == 0.5 and cfg.LAVID.LOSS.LAVID_WEIGHT == 20.0 and "CE_WEIGHT" not in cfg.LAVID.LOSS
    assert load_cfg(None, ["LAVID.LOSS.CE_WEIGHT", "0.25"]).LAVID.LOSS.BASE_WEIGHT == 0.25
    err = capsys.readouterr().err
    assert err.count("LAVID.LOSS.CE_WEIGHT is deprecated, read as LAVID.LOSS.BASE_WEIGHT") == 1


def test_a_run_saved_with_the_old_key_resumes_without_a_reported_change(tmp_path):
    from lavid_plugin.engine.checkpoints import check_resume

    cfg = load_cfg(None, ["DISTILLER.TYPE", "LAVID"])
    (tmp_path / "config.yaml").write_text(cfg.dump().replace("BASE_WEIGHT", "CE_WEIGHT"))
    check_resume(tmp_path, cfg.dump(), {})  # no LavidError: the same setup
    (tmp_path / "config.yaml").write_text(cfg.dump().replace("BASE_WEIGHT: 1.0", "CE_WEIGHT: 0.5"))
    with pytest.raises(LavidError, match="LAVID.LOSS.BASE_WEIGHT: 0.5 -> 1.0"):
        check_resume(tmp_path, cfg.dump(), {})


def test_table_2_has_vit_b16_under_both_schedules():
    """The paper's cosine (vit_b16.yaml) and the authors' code's MultiStepLR at 150/180/210 (vit_b16_authors.yaml)."""
    for d in tables.FINE_GRAINED:
        paper = load_cfg(str(CONFIG_DIR / d / "vit_b16.yaml"))
        code = load_cfg(str(CONFIG_DIR / d / "vit_b16_authors.yaml"))
        assert paper.SOLVER.SCHEDULER == "cosine" and code.SOLVER.SCHEDULER == "step"
        assert list(code.SOLVER.LR_DECAY_STAGES) == [150, 180, 210] and code.SOLVER.EPOCHS == paper.SOLVER.EPOCHS == 500
        assert paper.DISTILLER.STUDENT == code.DISTILLER.STUDENT == "vit_b16"
        assert paper.LOG.SELECT == "best_val_loss" and paper.LOG.EVAL_FREQ == 5  # the authors' checkpoint rule
