"""Precomputed teachers as a concept: a new distiller that reads a per-sample bank plugs in through
its own file and one table row, and nothing else changes.

``BankFit`` below stands for that new file (``lavid_plugin/distillers/BANKFIT.py``: the class with
its config node and its ``@register`` line); the fixture ``plugged`` registers it, as importing the
file does, and adds the table row. The config schema, the tables' teacher/bank/trainer choices, the
launcher and the trainer learn everything else from the class."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import load_script, small_demo
from lavid_plugin import tables
from lavid_plugin.config import get_cfg_defaults, load_cfg
from lavid_plugin.distillers import Distiller, distiller_dict, register
from lavid_plugin.engine.build import build_distiller, setup_data
from lavid_plugin.errors import LavidError
from lavid_plugin.image_teacher import SampleBank
from lavid_plugin.teacher_files import TeacherFile

DIM = 6


# ------------------------------------------------------------------ "its own file"
class BankFit(Distiller):
    """CE + ``BANKFIT.LOSS.FEAT_WEIGHT`` * MSE(head(pooled feature), the image's bank feature)."""

    NODE = "BANKFIT"
    DEFAULTS = {"BANK": "", "LOSS": {"FEAT_WEIGHT": 1.0}}

    def __init__(self, student, teacher, cfg, precomputed=None):
        super().__init__(student, None)
        self.bank = precomputed.table  # a SampleBank aligned to the training samples
        self.head = nn.Linear(student.num_features, self.bank.feature.shape[1])
        self.weight = cfg.BANKFIT.LOSS.FEAT_WEIGHT

    @classmethod
    def needs_teacher(cls, cfg):
        return False

    @classmethod
    def precomputed_teacher(cls, cfg):
        return TeacherFile("sample", cfg.BANKFIT.BANK, "BANKFIT.BANK")

    def get_learnable_parameters(self):
        return super().get_learnable_parameters() + list(self.head.parameters())

    def forward_train(self, image, target, index=None, **kwargs):
        if index is None:
            raise LavidError("BANKFIT looks its teacher up by sample: pass the batch's index")
        logits, feats = self.student(image)
        pred = self.head(feats["pooled_feat"])
        return logits, {"loss_ce": F.cross_entropy(logits, target),
                        "loss_feat": self.weight * F.mse_loss(pred, self.bank("feature", index))}


# ------------------------------------------------------------------ its file's @register line, and one table row
@pytest.fixture
def plugged(monkeypatch):
    assert "BANKFIT" not in get_cfg_defaults()
    register("BANKFIT")(BankFit)  # what importing lavid_plugin/distillers/BANKFIT.py does
    monkeypatch.setitem(tables.METHODS, "bankfit", {"DISTILLER": {"TYPE": "BANKFIT"},  # the table row
                                                    "BANKFIT": {"BANK": "./banks/demo_feature.safetensors"}})
    # (a table to show it in: an existing table's row list would name it)
    monkeypatch.setitem(tables.TABLES, "X", tables.Table("X", "bank features", (("demo_birds", ""),), ("res18",),
                                                         ("vanilla", "bankfit")))
    yield
    del distiller_dict["BANKFIT"]


def _demo_bank(tmp_path, drop=0, shuffle=True):
    """A bank keyed by the demo's training images (paths relative to DATASET.ROOT), in shuffled order."""
    root = tmp_path / "birds"
    ids = sorted(p.relative_to(root).as_posix() for p in (root / "train").rglob("*.png"))
    ids = ids[drop:]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(ids), generator=g).tolist() if shuffle else list(range(len(ids)))
    feats = torch.randn(len(ids), DIM, generator=g)
    bank = SampleBank([ids[i] for i in order], {"feature": feats[order]}, provenance={"model": "test"})
    path = bank.save(tmp_path / f"bank{drop}.safetensors")
    return path, dict(zip(ids, feats))


def _cfg(tmp_path, bank, *extra):
    return load_cfg(None, ["DATASET.TYPE", "demo_birds", "DATASET.ROOT", str(tmp_path / "birds"),
                           "DATASET.IMAGE_SIZE", "32", "DATASET.NUM_WORKERS", "0", "DISTILLER.TYPE", "BANKFIT",
                           "DISTILLER.STUDENT", "resnet_tiny", "BANKFIT.BANK", str(bank), "SOLVER.BATCH_SIZE", "8",
                           "LOG.PREFIX", str(tmp_path / "out"), *extra])


def test_a_per_sample_teacher_is_aligned_by_sample_id_and_looked_up_by_index(tmp_path, plugged):
    small_demo(tmp_path / "birds", train=2, test=1)
    path, feature_of = _demo_bank(tmp_path)
    cfg = _cfg(tmp_path, path)
    run = setup_data(cfg)
    model = build_distiller(cfg, run.context)
    root = Path(cfg.DATASET.ROOT).resolve()
    image, target, index = next(iter(run.train_loader))
    want = torch.stack([feature_of[Path(run.splits.train.samples[i][0]).resolve().relative_to(root).as_posix()]
                        for i in index.tolist()])
    assert torch.equal(model.bank("feature", index), want)
    with pytest.raises(LavidError, match="pass the batch's index"):
        model.forward_train(image=image, target=target)

    from lavid_plugin.engine.launch import train

    trainer = train(_cfg(tmp_path, path, "SOLVER.EPOCHS", "1", "EXPERIMENT.NAME", "bankfit"), progress=False)
    assert "loss_feat:" in (trainer.log_path / "worklog.txt").read_text()


def test_a_bank_missing_an_image_is_refused_naming_it(tmp_path, plugged):
    small_demo(tmp_path / "birds", train=2, test=1)
    path, feature_of = _demo_bank(tmp_path, drop=1)
    first = sorted(p.relative_to(tmp_path / "birds").as_posix() for p in (tmp_path / "birds" / "train").rglob("*.png"))[0]
    cfg = _cfg(tmp_path, path)
    with pytest.raises(LavidError, match=f"bank1.safetensors \\(BANKFIT.BANK\\).*{first}"):
        build_distiller(cfg, setup_data(cfg).context)


def test_the_class_declares_its_config_node_and_needs_nothing_else_names_them(plugged):
    cfg = get_cfg_defaults()
    assert cfg.BANKFIT.BANK == "" and cfg.BANKFIT.LOSS.FEAT_WEIGHT == 1.0  # from BankFit.DEFAULTS
    assert tables.reads_bank("bankfit") == ("BANKFIT", "") and not tables.reads_signature("bankfit")
    assert not tables.needs_visual_teacher("bankfit") and "bankfit" not in tables.VISUAL_TEACHER
    assert tables.trainer_of("bankfit") == "sample"  # mdistiller's trainers must pass the sample index
    assert tables.Cell("X", "demo_birds", "res18", "bankfit").config()["SOLVER"]["TRAINER"] == "sample"


def test_the_table_entry_is_all_the_launcher_and_configs_need(tmp_path, plugged):
    from lavid_plugin.reproduce import plan

    cells = [c for c, _ in plan("X")]
    assert [c.path for c in cells] == ["demo_birds/res18_vanilla.yaml", "demo_birds/res18_bankfit.yaml"]
    text = load_script("make_configs").render(cells[1])
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_cfg(str(tmp_path / "c.yaml"))  # the generated YAML merges, with the new node
    assert cfg.DISTILLER.TYPE == "BANKFIT" and cfg.BANKFIT.BANK == "./banks/demo_feature.safetensors"
    assert tables.cell_from_tag(cfg.EXPERIMENT.TAG) == cells[1]


def test_sample_bank_round_trip_and_bad_files(tmp_path):
    bank = SampleBank(["b.jpg", "a.jpg"], {"feature": torch.arange(6.).view(2, 3), "yes": torch.tensor([0.2, 0.9])},
                      provenance={"model": "m"})
    loaded = SampleBank.load(bank.save(tmp_path / "b.safetensors"))
    assert loaded.sample_ids == ["b.jpg", "a.jpg"] and loaded.provenance["content_hash"] == bank.content_hash()
    aligned = loaded.align(["a.jpg", "b.jpg"])
    assert torch.equal(aligned("feature", torch.tensor([0])), torch.tensor([[3., 4., 5.]]))
    with pytest.raises(LavidError, match="'c.jpg'"):
        loaded.align(["a.jpg", "b.jpg", "c.jpg"])
    with pytest.raises(LavidError, match="lacks, first 'b.jpg'"):
        loaded.align(["a.jpg"])
    with pytest.raises(LavidError, match="non-finite values for sample 'a.jpg'"):
        SampleBank(["b.jpg", "a.jpg"], {"feature": torch.tensor([[1.0], [float("nan")]])})
    (tmp_path / "x.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LavidError, match="x.safetensors: not a readable"):
        SampleBank.load(tmp_path / "x.safetensors")
    from helpers import random_signature

    random_signature(["a", "b"]).save(tmp_path / "sig.safetensors")
    with pytest.raises(LavidError, match="not a LaViD sample bank"):
        SampleBank.load(tmp_path / "sig.safetensors")
