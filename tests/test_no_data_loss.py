"""Nothing lost and nothing wrong without a word: finished runs are never overwritten, a bank never
mixes two models, ablation reports never mislabel, and a refusal leaves every file as it was.

A folder's state is its content hash (every file's relative path and bytes); "changes nothing" is the
same hash before and after."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import random_signature, small_demo
from lavid_plugin.cli import main as lavid
from lavid_plugin.cli.train import train_main
from lavid_plugin.config import load_cfg
from lavid_plugin.errors import LavidError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lavid" / "demo"


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(p.relative_to(folder).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def opts(root: Path, prefix: Path, *more):
    return ["DATASET.ROOT", str(root / "data"), "DATASET.IMAGE_SIZE", "32", "SOLVER.BATCH_SIZE", "8",
            "SOLVER.EPOCHS", "1", "LAVID.SIGNATURE", str(root / "sig.safetensors"), "LOG.PREFIX", str(prefix),
            "LAVID.LOSS.LAVID_WEIGHT", "1.0", "EXPERIMENT.NAME", "done", "DISTILLER.STUDENT", "resnet_tiny", *more]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny demo tree, its signature and one finished 1-epoch LaViD run (``out/demo/done``)."""
    root = tmp_path_factory.mktemp("finished")
    names = small_demo(root / "data", train=2, test=1)
    random_signature(names, counts=(3, 3)).save(root / "sig.safetensors")
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(root, root / "out")]) == 0
    return root


@pytest.fixture
def run_copy(finished, tmp_path):
    """A private copy of the finished run: ``(its folder, the prefix it lies under)``."""
    prefix = tmp_path / "out"
    shutil.copytree(finished / "out", prefix)
    return prefix / "demo" / "done", prefix


# ------------------------------------------------------------------ 1. a finished run is never overwritten
def test_starting_into_a_finished_run_is_refused_and_changes_nothing(finished, run_copy, capsys):
    folder, prefix = run_copy
    before = folder_hash(folder)
    rc = train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix)])
    err = capsys.readouterr().err
    assert rc == 2 and str(folder) in err and "--resume" in err and "EXPERIMENT.NAME" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert folder_hash(folder) == before and sorted(p.name for p in folder.parent.iterdir()) == ["done"]


def test_overwrite_moves_the_old_run_aside_and_deletes_nothing(finished, run_copy):
    folder, prefix = run_copy
    before = folder_hash(folder)
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix), "--overwrite"]) == 0
    aside = [p for p in folder.parent.iterdir() if p.name.startswith("done.moved-")]
    assert len(aside) == 1 and folder_hash(aside[0]) == before  # the old run, byte for byte
    log = (folder / "worklog.txt").read_text()
    assert log.count("epoch: 1") == 1 and log.count("best_acc") == 1  # one run's record, not two
    from lavid_plugin.report import find_runs

    assert [r.path for r in find_runs([prefix])] == [folder]  # the moved-aside run is not counted


def test_overwrite_and_resume_together_are_refused(finished, run_copy, capsys):
    folder, prefix = run_copy
    before = folder_hash(folder)
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix), "--overwrite", "--resume"]) == 2
    assert "give one of them" in capsys.readouterr().err and folder_hash(folder) == before


@pytest.mark.parametrize("key", ["LAVID.LOSS.LAVID_WEIGHT", "EXPERIMENT.NAME", "EXPERIMENT.SEED", "LOG.PREFIX"])
def test_reproduce_refuses_opts_that_it_sets_per_run(key, capsys):
    from lavid_plugin.reproduce import main

    rc = main(["--ablation", "lambda", "--base", str(DEMO / "res18.yaml"), "--dry-run", "--opts", key, "5"])
    err = capsys.readouterr().err
    assert rc == 2 and key in err and "per run" in err


def test_reproduce_refuses_zero_seeds(capsys):
    from lavid_plugin.reproduce import main

    assert main(["--table", "1", "--datasets", "cub", "--seeds", "0", "--dry-run"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. a bank never mixes two models
def _tiny_vlm(path: Path, seed: int) -> Path:
    from lavid_plugin.image_teacher.tiny_vlm import write_tiny_llava

    write_tiny_llava(path, ["Black footed Albatross", "Laysan Albatross", "Groove billed Ani"], seed=seed)
    return path


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    from fake_trees import write_cub

    root = tmp_path_factory.mktemp("cub")
    write_cub(root, ("Black footed Albatross", "Laysan Albatross", "Groove billed Ani"))
    return root


def _features(cub, model: Path, out: Path, layer: str = "-1"):
    return ["teacher", "features", "--cfg", "", "--model", str(model), "--layers", layer, "-o", str(out),
            "--chunk-size", "2", "--batch-size", "2", "--no-progress",
            "--opts", "DATASET.TYPE", "cub", "DATASET.ROOT", str(cub), "DATASET.IMAGE_SIZE", "32"]


def test_a_killed_extraction_refuses_to_resume_with_other_weights_at_the_same_path(cub, tmp_path, monkeypatch, capsys):
    import lavid_plugin.utils as utils

    model, out = tmp_path / "vlm", tmp_path / "bank.safetensors"
    _tiny_vlm(model, seed=0)

    class Killed(BaseException):
        pass

    def kill(name, n):
        if n == 0:
            raise Killed

    monkeypatch.setattr(utils, "fault_point", kill)
    with pytest.raises(Killed):
        lavid(_features(cub, model, out))
    monkeypatch.setattr(utils, "fault_point", lambda *a: None)
    parts = out.with_name(out.name + ".parts")
    assert len(list(parts.glob("chunk-*.safetensors"))) == 1
    before = folder_hash(parts)
    shutil.rmtree(model)
    _tiny_vlm(model, seed=1)  # other weights, same path
    capsys.readouterr()
    assert lavid(_features(cub, model, out)) == 2
    err = capsys.readouterr().err
    assert str(model) in err and "another model" in err and "fingerprint" in err
    assert folder_hash(parts) == before and not out.exists()


def test_a_bank_records_the_models_fingerprint_and_compute_dtype(cub, tmp_path):
    from lavid_plugin.hf import model_fingerprint
    from lavid_plugin.image_teacher import SampleBank

    model, out = _tiny_vlm(tmp_path / "vlm", seed=0), tmp_path / "bank.safetensors"
    assert lavid(_features(cub, model, out)) == 0
    prov = SampleBank.load(out).provenance
    assert prov["model_fingerprint"] == model_fingerprint(str(model)) and len(prov["model_fingerprint"]) == 64
    assert prov["compute_dtype"] == "torch.float32" and prov["storage_dtype"] == "float16"


def test_a_first_chunk_that_fails_leaves_nothing_that_blocks_a_rerun(cub, tmp_path, monkeypatch, capsys):
    import lavid_plugin.image_teacher.jobs as jobs

    model, out = _tiny_vlm(tmp_path / "vlm", seed=0), tmp_path / "bank.safetensors"
    real = jobs._chunk

    def broken(*a, **k):
        raise LavidError("cannot read training image 'x.jpg'")

    monkeypatch.setattr(jobs, "_chunk", broken)
    assert lavid(_features(cub, model, out)) == 2
    assert not out.with_name(out.name + ".parts").exists()
    monkeypatch.setattr(jobs, "_chunk", real)
    assert lavid(_features(cub, model, out, layer="-2")) == 0  # other flags than the failed start
    assert out.is_file()


# ------------------------------------------------------------------ 3. ablation reports cannot mislabel
def _fake_run(prefix: Path, base: Path, value: float, seed: int, name: str, acc: float, *more) -> Path:
    from lavid_plugin.ablations import get

    ab = get("lambda")
    cfg = load_cfg(str(base), ["LAVID.LOSS.LAVID_WEIGHT", str(value), "EXPERIMENT.SEED", str(seed),
                               "EXPERIMENT.TAG", ab.tag(value, "demo" if "demo" in str(base) else "cub"),
                               "SOLVER.EPOCHS", "1", *more])
    folder = prefix / cfg.EXPERIMENT.PROJECT / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(cfg.dump())
    (folder / "worklog.txt").write_text(f"{'-' * 25}\nepoch: 1\nlr: 0.01\ntest_acc: {acc:.2f}\ntest_loss: 1.00\n"
                                        f"{'-' * 25}\nbest_acc\t{acc:.2f}\n")
    return folder


def test_report_refuses_an_ablation_of_two_base_configs_naming_them(tmp_path, capsys):
    prefix = tmp_path / "out"
    a = _fake_run(prefix, DEMO / "res18.yaml", 40, 0, "a", 30.0)
    b = _fake_run(prefix, DEMO / "res18.yaml", 40, 1, "b", 90.0, "SOLVER.LR", "0.5")  # another base: other lr
    before = folder_hash(prefix)
    assert lavid(["report", str(prefix), "--ablation", "lambda", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "2 different base configs" in err and "SOLVER.LR" in err and str(a) in err and str(b) in err
    assert folder_hash(prefix) == before and not list(tmp_path.glob("r.*"))


def test_report_refuses_a_copied_seed_folder_naming_both(tmp_path, capsys):
    prefix = tmp_path / "out"
    a = _fake_run(prefix, DEMO / "res18.yaml", 40, 0, "res18_lambda40_seed0", 30.0)
    copy = a.with_name(a.name + ".bak")
    shutil.copytree(a, copy)
    assert lavid(["report", str(prefix), "--ablation", "lambda"]) == 2
    err = capsys.readouterr().err
    assert "EXPERIMENT.SEED 0" in err and str(a) in err and str(copy) in err


def test_report_counts_seeds_by_experiment_seed(tmp_path, capsys):
    prefix = tmp_path / "out"
    for seed, acc in ((0, 30.0), (1, 40.0)):
        _fake_run(prefix, DEMO / "res18.yaml", 40, seed, f"x{seed}", acc)
    assert lavid(["report", str(prefix), "--ablation", "lambda"]) == 0
    assert "| 40 | 2 | 35.00 ± 7.07 |" in capsys.readouterr().out


# ------------------------------------------------------------------ 4. a failed --resume rewrites nothing
@pytest.mark.parametrize("flags", [["--resume"], ["--resume-force", "SOLVER.LR", "0.5"]])
def test_a_resume_refused_on_a_damaged_checkpoint_leaves_the_run_as_it_was(finished, run_copy, flags, capsys):
    folder, prefix = run_copy
    latest = folder / "latest"
    data = latest.read_bytes()
    latest.unlink()  # `latest` is a link to the epoch's file: damage a copy of its own
    latest.write_bytes(data[: len(data) // 2])
    before = folder_hash(folder)
    rc = train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix, "SOLVER.EPOCHS", "2"), *flags])
    assert rc == 2 and "cannot resume" in capsys.readouterr().err
    # config.yaml still says 1 epoch (the run stays "finished") and the learning rate it ran with
    assert folder_hash(folder) == before


@pytest.mark.parametrize("over,must", [(("SOLVER.TYPE", "Adam"), "SOLVER.TYPE 'Adam'"),
                                       (("SOLVER.SCHEDULER", "cosin"), "SOLVER.SCHEDULER 'cosin'")])
def test_a_bad_solver_is_refused_before_a_run_folder_exists(finished, tmp_path, over, must, capsys):
    prefix = tmp_path / "out"
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix, *over)]) == 2
    assert must in capsys.readouterr().err and not prefix.exists()


# ------------------------------------------------------------------ 5. no training on nonsense
@pytest.mark.parametrize("over,must", [
    (("SOLVER.SCHEDULER", "cosine", "SOLVER.WARMUP_EPOCHS", "5", "SOLVER.EPOCHS", "1"), "before the learning rate"),
    (("SOLVER.WARMUP_EPOCHS", "2", "SOLVER.EPOCHS", "4"), "no effect with SOLVER.SCHEDULER 'step'"),
])
def test_a_warm_up_that_cannot_work_is_refused(finished, tmp_path, over, must, capsys):
    prefix = tmp_path / "out"
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts(finished, prefix, *over)]) == 2
    assert must in capsys.readouterr().err and not prefix.exists()


def test_a_clip_student_refuses_a_folder_that_holds_another_model(tmp_path):
    from lavid_plugin.models.vit import load_clip
    from lavid_plugin.signature.tiny_lm import write_tiny_lm

    write_tiny_lm(tmp_path / "llama", ["a photo of a bird"], vocab_size=64)
    with pytest.raises(LavidError, match="holds a 'llama' model, not CLIP"):
        load_clip(str(tmp_path / "llama"))


def test_a_truncated_clip_weight_file_is_named(tmp_path):
    from lavid_plugin.models.tiny_clip import write_tiny_clip
    from lavid_plugin.models.vit import load_clip

    folder = write_tiny_clip(tmp_path / "clip", ["a photo of a bird"])
    weights = next(Path(folder).glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(LavidError, match="damaged or incomplete"):
        load_clip(str(folder))


def test_makd_refuses_p_yes_outside_0_1(finished):
    from lavid_plugin.distillers.MAKD import MaKD
    from lavid_plugin.image_teacher import SampleBank
    from lavid_plugin.models import build_student
    from lavid_plugin.teacher_files import LoadedTeacher

    bank = SampleBank(["a.png", "b.png"], {"p_yes": torch.tensor([[0.2, 1.4], [0.5, 0.5]])})
    cfg = load_cfg(None, ["DISTILLER.TYPE", "MAKD", "MAKD.BANK", "b.safetensors", "DISTILLER.STUDENT", "resnet18"])
    with pytest.raises(LavidError, match=r"outside \[0, 1\].*1.4.*'a.png', aspect 2"):
        MaKD(build_student(cfg, ["x", "y"]), None, cfg, precomputed=LoadedTeacher(bank))


def test_crd_warns_when_it_asks_for_more_negatives_than_there_are(capsys):
    from lavid_plugin.data.contrastive import ContrastiveSampling

    class Six(torch.utils.data.Dataset):
        targets = [0, 0, 1, 1, 2, 2]

    ContrastiveSampling(Six(), k=16)
    err = capsys.readouterr().err
    assert "NCE.K 16" in err and "6 training images" in err and "only 4" in err


# ------------------------------------------------------------------ 6. one message, never a traceback
def test_a_lavid_error_raised_in_a_loader_worker_arrives_as_its_own_message():
    class Refusing(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise LavidError("image 'x.jpg' is damaged")

    loader = torch.utils.data.DataLoader(Refusing(), num_workers=1)
    with pytest.raises(LavidError) as e:
        next(iter(loader))
    assert str(e.value) == "image 'x.jpg' is damaged"


def test_a_vit_weight_file_of_another_input_size_loads_and_a_cut_one_is_named(tmp_path, monkeypatch):
    import torchvision.models
    from torchvision.models import VisionTransformer

    from lavid_plugin.models.vit import vit_b16

    def small_vit(weights=None, image_size=224):  # ViT-B/16's structure at toy width: the same loading path
        return VisionTransformer(image_size, 16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)

    monkeypatch.setattr(torchvision.models, "vit_b_16", small_vit)
    torch.save(small_vit(image_size=64).state_dict(), tmp_path / "vit64.pth")
    net = vit_b16(3, weights=str(tmp_path / "vit64.pth"), image_size=32)  # positions interpolated 64 -> 32 px
    assert net(torch.zeros(1, 3, 32, 32))[0].shape == (1, 3)
    data = (tmp_path / "vit64.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(LavidError, match="cut.pth: cannot read it as a weight file"):
        vit_b16(3, weights=str(tmp_path / "cut.pth"), image_size=32)


def test_a_16_bit_png_decodes_on_the_device_path():
    import io

    import numpy as np
    from PIL import Image

    from lavid_plugin.data.device_decode import DeviceDecoder

    buf = io.BytesIO()
    Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16)).save(buf, format="PNG")
    data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    out = DeviceDecoder(16, "cpu")([data])
    assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()


def test_a_bank_tensor_of_the_wrong_rank_is_named(finished):
    from lavid_plugin.distillers.FITNET_MLLM import FitNetMLLM
    from lavid_plugin.image_teacher import SampleBank
    from lavid_plugin.models import build_student
    from lavid_plugin.teacher_files import LoadedTeacher

    bank = SampleBank(["a.png"], {"last-12": torch.zeros(1, 3, 4)})
    cfg = load_cfg(None, ["DISTILLER.TYPE", "FITNET_MLLM", "FITNET_MLLM.BANK", "f.safetensors",
                          "DISTILLER.STUDENT", "resnet18"])
    with pytest.raises(LavidError, match=r"f.safetensors \(FITNET_MLLM.BANK\): tensor 'last-12' has shape \(1, 3, 4\)"):
        FitNetMLLM(build_student(cfg, ["x", "y"]), None, cfg, precomputed=LoadedTeacher(bank))


@pytest.mark.parametrize("case", ["report-bad-bytes", "report-cut-config"])
def test_report_names_a_damaged_file(tmp_path, case, capsys):
    folder = _fake_run(tmp_path / "out", DEMO / "res18.yaml", 40, 0, "a", 30.0)
    if case == "report-bad-bytes":
        bad = folder / "worklog.txt"
        bad.write_bytes(b"\xff\xfe\x00garbage")
    else:
        bad = folder / "config.yaml"
        text = bad.read_text()
        bad.write_text(text[: len(text) // 3])
    assert lavid(["report", str(tmp_path / "out"), "--ablation", "lambda"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_report_refuses_a_png_size_of_zero_before_writing_anything(tmp_path, capsys):
    _fake_run(tmp_path / "out", DEMO / "res18.yaml", 40, 0, "a", 30.0)
    assert lavid(["report", str(tmp_path / "out"), "--ablation", "lambda", "--out", str(tmp_path / "r"),
                  "--png-size", "0", "0"]) == 2
    assert "--png-size 0 0" in capsys.readouterr().err and not list(tmp_path.glob("r.*"))


@pytest.mark.parametrize("command", ["inspect", "make-tiny-vlm", "make-tiny-lm", "report"])
def test_an_output_under_a_file_is_named_before_any_work(tmp_path, command, capsys):
    (tmp_path / "file").write_text("x")
    under = tmp_path / "file" / "out"
    sig = random_signature(["a", "b"], counts=(2, 2)).save(tmp_path / "s.safetensors")
    args = {"inspect": ["signature", "inspect", str(sig), "--png", str(under / "h.png")],
            "make-tiny-vlm": ["teacher", "make-tiny-vlm", str(under)],
            "make-tiny-lm": ["signature", "make-tiny-lm", str(under)],
            "report": ["report", str(tmp_path), "--table", "1", "--out", str(under / "t")]}[command]
    assert lavid(args) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err


def test_inspect_question_zero_is_refused(tmp_path, capsys):
    sig = random_signature(["a", "b"], counts=(2, 2)).save(tmp_path / "s.safetensors")
    assert lavid(["signature", "inspect", str(sig), "--question", "0"]) == 2
    assert "counts from 1" in capsys.readouterr().err and not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("extra,must", [(["-n", "0"], "-n must be at least 1"),
                                        (["--label", "a", "--label", "b"], "one --label per --cfg")])
def test_gradcam_refuses_bad_counts(finished, tmp_path, extra, must, capsys):
    pytest.importorskip("pytorch_grad_cam")
    ckpt = finished / "out" / "demo" / "done" / "student_best"
    args = ["gradcam", "--cfg", str(DEMO / "res18.yaml"), "--ckpt", str(ckpt), "-o", str(tmp_path / "g.png"),
            "--opts", "DATASET.ROOT", str(finished / "data"), "DATASET.IMAGE_SIZE", "32", *extra]
    assert lavid(args) == 2
    assert must in capsys.readouterr().err and not (tmp_path / "g.png").exists()


def test_a_released_style_json_is_not_read_as_a_run(tmp_path):
    # a folder with a worklog but no config.yaml is named, not silently skipped or counted
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "worklog.txt").write_text(json.dumps({}))
    with pytest.raises(LavidError, match="no config.yaml"):
        from lavid_plugin.report import find_runs

        find_runs([tmp_path])
