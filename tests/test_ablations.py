"""The ablation harness (reproduce.py --ablation, lavid report --ablation with its plot) and Grad-CAM figures."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import small_demo
from lavid_plugin import ablations
from lavid_plugin.errors import LavidError

ROOT = Path(__file__).resolve().parents[1]


def dry_run(*args):
    """``scripts/reproduce.py --dry-run ARGS``'s output lines, run in this process."""
    import contextlib
    import io

    from lavid_plugin.reproduce import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--dry-run", *args]) == 0
    return buf.getvalue().splitlines()


def test_lambda_ablation_lists_one_run_per_value(tmp_path):
    lines = dry_run("--ablation", "lambda", "--seeds", "1", "--prefix", str(tmp_path))
    # every point reads the dataset's signature: the authors' released one, fetched once first
    assert lines[0] == "Ablation lambda: 10 runs, 0 finished, 10 to run; 1 teacher file(s) to write first (Stage 1 / 1b)"
    assert sum("signature released cub --llm qwen2.5-7b --questions chat_50-5" in x for x in lines) == 1
    for lam in range(10, 101, 10):
        run = [x for x in lines if f"LAVID.LOSS.LAVID_WEIGHT {lam} " in x]
        assert len(run) == 1 and "configs/lavid/cub/res18.yaml" in run[0]
        assert f"EXPERIMENT.TAG ablation-lambda,cub,res18,{lam}" in run[0]


def test_every_ablation_plans_its_points_and_what_they_read(tmp_path):
    for name, ab in ablations.ABLATIONS.items():
        lines = dry_run("--ablation", name, "--seeds", "2", "--prefix", str(tmp_path))
        runs = [x for x in lines if "tools/train.py" in x]
        assert len(runs) >= 2 * len(ab.values), name
    entropy = dry_run("--ablation", "entropy", "--seeds", "1", "--prefix", str(tmp_path))
    # 0 reads the base; 2 of 50 is the paper's point (the questions under 5 %)
    assert sum("signature prune" in x and "--drop-lowest-entropy" in x for x in entropy) == 6
    assert any("--drop-lowest-entropy 2 " in x for x in entropy)
    prune = next(i for i, x in enumerate(entropy) if "signature prune" in x)
    fetch = [i for i, x in enumerate(entropy) if "signature released cub" in x]
    assert len(fetch) == 1 and fetch[0] < prune  # what is pruned is fetched first
    questions = dry_run("--ablation", "questions", "--seeds", "1", "--prefix", str(tmp_path))
    assert any("qwen2.5-7b_chat_60-5.safetensors" in x for x in questions)  # Fig. 6's Q = 60
    # every point's signature is one of the authors' released files (70-5 spelled qwen2.5-7B_ in the release)
    assert sum(x.startswith("teacher file") and "the authors' released answers" in x for x in questions) == 7
    assert any("qwen2.5-7B_chat_70-5.json" in x for x in questions)
    teachers = dry_run("--ablation", "teachers", "--seeds", "1", "--prefix", str(tmp_path))
    for llm in ablations.TEACHER_LLMS:  # Fig. 5: the nine released teachers
        assert any(f"signature released cub --llm {llm} " in x for x in teachers), llm
    # M = 3 was released as questions only: its answers are extracted with Qwen2.5-7B from them, and said
    options = dry_run("--ablation", "options", "--seeds", "1", "--prefix", str(tmp_path))
    assert any("signatures/cub/qwen2.5-7b_chat_50-3.safetensors: extracted with Qwen/Qwen2.5-7B-Instruct (the authors "
               "released no qwen2.5-7b_chat_50-3 answers for cub)" in x for x in options)
    assert any("--questions signatures/cub/chat_50-3.txt --classes signatures/cub/classes.json" in x for x in options)


def _fake_run(prefix, name, value, seed, acc, epochs=3):
    folder = prefix / "lavid_cub" / f"res18_{name}{value}_seed{seed}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"EXPERIMENT:\n  TAG: ablation-{name},cub,res18,{value}\n  SEED: {seed}\nSOLVER:\n  EPOCHS: {epochs}\nLOG:\n  EVAL_FREQ: 1\n")
    blocks = [f"{'-' * 25}\nepoch: {e}\ntest_acc: {acc - (epochs - e):.2f}\n{'-' * 25}" for e in range(1, epochs + 1)]
    (folder / "worklog.txt").write_text("\n".join(blocks) + f"\nbest_acc\t{acc:.2f}\n")


def test_ablation_report_writes_markdown_csv_and_a_plot_of_the_requested_size(tmp_path):
    from lavid_plugin.cli import main

    for lam, accs in ((10, (50.0, 52.0)), (40, (60.0, 61.0)), (100, (55.0, 57.0))):
        for seed, acc in enumerate(accs):
            _fake_run(tmp_path / "runs", "lambda", lam, seed, acc)
    _fake_run(tmp_path / "runs", "questions", 20, 0, 40.0)  # another ablation's run is left out
    out = tmp_path / "rep" / "lambda"
    out.parent.mkdir()
    assert main(["report", str(tmp_path / "runs"), "--ablation", "lambda", "--out", str(out),
                 "--png-size", "500", "320"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "| 10 | 2 | 51.00 ± 1.41 |" in md and "| 40 | 2 | 60.50 ± 0.71 |" in md and "| 20 |" not in md
    csv = out.with_suffix(".csv").read_text().splitlines()
    assert csv[0] == "lambda,seeds,mean,std,epoch" and csv[1].startswith("10,2,51.0000,1.4142")
    png = Image.open(out.with_suffix(".png"))
    assert png.size == (500, 320) and out.with_suffix(".png").stat().st_size > 5000
    with pytest.raises(LavidError, match="no run of ablation 'options'"):
        from lavid_plugin.report import report_ablation

        report_ablation([tmp_path / "runs"], "options")


@pytest.fixture(scope="module")
def tiny_students():
    from lavid_plugin.models import build_model

    from lavid_plugin.models.tiny_clip import build_tiny_clip
    from lavid_plugin.models.vit import CLIPStudent, clip_text_weights

    torch.manual_seed(0)
    clip, tok = build_tiny_clip(["w x y z"], image_size=64)
    text = clip_text_weights(clip, tok, list("wxyz"))
    return {"cnn": build_model("resnet18", 4).eval(), "vit": build_model("vit_tiny", 4, image_size=64).eval(),
            "mv2": build_model("mobilenetv2", 4).eval(), "shuv2": build_model("shufflenetv2", 4).eval(),
            "clip": CLIPStudent(clip.vision_model, clip.visual_projection, text, 100.0, 64).eval()}


@pytest.mark.parametrize("kind", ["cnn", "vit", "mv2", "shuv2", "clip"])
def test_gradcam_maps_have_the_inputs_size_and_lie_in_0_1(tiny_students, kind):
    from lavid_plugin.gradcam import _Logits, cams

    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():  # the module-by-module ResNet path Grad-CAM hooks into is the student's function
        torch.testing.assert_close(_Logits(tiny_students[kind])(x), tiny_students[kind](x)[0])
    maps = cams(tiny_students[kind], x, [0, 1, 3])
    assert maps.shape == (3, 64, 64) and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0


def test_gradcam_without_the_package_names_the_extra(monkeypatch, tiny_students):
    from lavid_plugin.gradcam import cams

    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    with pytest.raises(LavidError, match=r"pip install 'lavid-plugin\[viz\]'"):
        cams(tiny_students["cnn"], torch.randn(1, 3, 32, 32), [0])


def test_gradcam_command_writes_the_side_by_side_grid(tmp_path):
    from lavid_plugin.cli import main
    from lavid_plugin.engine.launch import train
    from lavid_plugin.config import load_cfg

    small_demo(tmp_path / "birds", train=1, test=1)
    opts = ["DATASET.TYPE", "demo_birds", "DATASET.ROOT", str(tmp_path / "birds"), "DATASET.IMAGE_SIZE", "64",
            "DATASET.NUM_WORKERS", "0", "SOLVER.BATCH_SIZE", "6", "SOLVER.EPOCHS", "1", "LOG.PREFIX", str(tmp_path)]
    cfgs = {}
    for student in ("resnet18", "vit_tiny"):
        t = train(load_cfg(None, opts + ["DISTILLER.STUDENT", student, "EXPERIMENT.NAME", student]), progress=False)
        (tmp_path / f"{student}.yaml").write_text(f"DISTILLER:\n  STUDENT: {student}\n")
        cfgs[student] = (str(tmp_path / f"{student}.yaml"), str(t.log_path / "student_best"))
    out = tmp_path / "grid.png"
    assert main(["gradcam", "--cfg", cfgs["resnet18"][0], "--ckpt", cfgs["resnet18"][1], "--cfg", cfgs["vit_tiny"][0],
                 "--ckpt", cfgs["vit_tiny"][1], "-n", "3", "-o", str(out), "--opts", *opts[:-4]]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] > img.shape[0] * 0.6  # 3 rows x 3 columns
    with pytest.raises(SystemExit):
        main(["gradcam", "--ckpt", "x"])
    assert main(["gradcam", "--cfg", cfgs["resnet18"][0], "--ckpt", cfgs["resnet18"][1], "--images",
                 str(tmp_path / "elsewhere.png"), "-o", str(out), "--opts", *opts[:-4]]) == 2


def test_default_gradcam_images_are_waterbirds_worst_group():
    from types import SimpleNamespace

    from lavid_plugin.gradcam import default_images

    names = ["landbird on land", "landbird on water", "waterbird on land", "waterbird on water"]
    test = SimpleNamespace(groups=[0, 2, 1, 2, 3, 2, 2], targets=[0, 1, 0, 1, 1, 1, 1])
    assert default_images(SimpleNamespace(test=test, group_names=names), 3) == [1, 3, 5]
    other = SimpleNamespace(test=SimpleNamespace(targets=[2, 2, 0, 1, 0]), group_names=None)
    assert default_images(other, 5) == [0, 2, 3]  # one image per class
