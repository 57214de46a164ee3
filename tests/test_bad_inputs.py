"""Bad input, as a hostile user would give it: every case exits non-zero with one message (no
traceback) that names the file, key, class or question to fix, and leaves nothing behind.

Each case is ``(command, args builder, what the message must name)``; the builder writes the bad
input into a fresh folder and returns the arguments. The command runs in-process (``lavid`` or
``tools/train.py``'s main); "nothing behind" means no file appeared apart from those the builder
wrote (and, for a run that already existed, no temporaries)."""

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from helpers import random_signature, small_demo
from lavid_plugin.cli import main as lavid
from lavid_plugin.cli.train import train_main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lavid" / "demo"
CLASSES = ["Red Wren", "Blue Jay", "Green Finch"]


# ------------------------------------------------------------------ shared inputs
@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    """A tiny demo tree, its signature, and one finished 1-epoch LaViD run to resume from."""
    root = tmp_path_factory.mktemp("birds")
    names = small_demo(root / "data", train=2, test=1)
    random_signature(names, counts=(3, 3)).save(root / "sig.safetensors")
    opts = train_opts(root)
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts, "EXPERIMENT.NAME", "done"]) == 0
    return root, names


def train_opts(root):
    return ["DATASET.ROOT", str(root / "data"), "DATASET.IMAGE_SIZE", "32", "SOLVER.BATCH_SIZE", "8",
            "SOLVER.EPOCHS", "1", "LAVID.SIGNATURE", str(root / "sig.safetensors"), "LOG.PREFIX", str(root / "out"),
            "LAVID.LOSS.LAVID_WEIGHT", "1.0", "DISTILLER.STUDENT", "resnet_tiny"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def released(path: Path, rows: dict) -> Path:
    return write(path, json.dumps(rows))


def sig_file(path: Path, meta, probs=None) -> Path:
    from safetensors.torch import save_file

    probs = torch.full((2, 2), 0.5) if probs is None else probs
    save_file({"probs": probs, "offsets": torch.tensor([0, 2])}, str(path),
              metadata=None if meta is None else {"lavid": meta})
    return path


def questions(path: Path, text="What colour is the class?\n1. Red\n2. Blue\n") -> Path:
    return write(path, text)


def classes(path: Path, names=CLASSES) -> Path:
    return write(path, json.dumps(names))


def extract(d: Path, q=None, c=None, model=None, out=None, *extra):
    return ["signature", "extract", "--model", str(model or d / "no-model"), "--questions", str(q or questions(d / "q.txt")),
            "--classes", str(c or classes(d / "c.json")), "-o", str(out or d / "out.safetensors"), *extra]


def train_cfg(d: Path, birds, *opts, cfg=None):
    root, _ = birds
    return ["--cfg", str(cfg or DEMO / "res18.yaml"), *train_opts(root), "LOG.PREFIX", str(d / "out"), *opts]


def resume_run(d: Path, birds, damage, *opts):
    """A copy of the finished run, its ``latest`` damaged by ``damage(path)``, resumed."""
    root, _ = birds
    run = d / "out" / "demo" / "done"
    shutil.copytree(root / "out" / "demo" / "done", run)
    if damage is not None:
        damage(run / "latest")
    return train_cfg(d, birds, "EXPERIMENT.NAME", "done", *opts) + ["--resume"]


class Hostile:
    def __reduce__(self):
        return (os.system, ("touch hostile-ran",))


def truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def model_with_auto_map(d: Path) -> Path:
    folder = d / "remote-model"
    folder.mkdir()
    write(folder / "config.json", json.dumps({"model_type": "custom", "auto_map": {"AutoModelForCausalLM": "m.M"}}))
    return folder


def signature_changed(d: Path, birds):
    root, names = birds
    random_signature(names, counts=(3, 3), seed=9).save(d / "other.safetensors")
    return resume_run(d, birds, None, "LAVID.SIGNATURE", str(d / "other.safetensors"))


# ------------------------------------------------------------------ the corpus: (id, command, builder, must name)
CASES = [
    # released signature files (lavid signature import)
    ("import-nan", "lavid", lambda d, b: ["signature", "import", str(write(d / "r.json", '{"a": [[NaN, 0.5]], "b": [[0.5, 0.5]]}')),
                                          "-o", str(d / "o.safetensors")], ["r.json", "class 'a'", "question 1", "non-finite"]),
    ("import-negative", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[-0.2, 1.2]], "b": [[0.5, 0.5]]})),
                                               "-o", str(d / "o.safetensors")], ["r.json", "class 'a'", "question 1", "outside [0, 1]"]),
    ("import-string", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [["0.5", 0.5]], "b": [[0.5, 0.5]]})),
                                             "-o", str(d / "o.safetensors")], ["r.json", "class 'a'", "question 1", "not a number"]),
    ("import-unnormalised", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5]], "b": [[0.9, 0.6]]})),
                                                   "-o", str(d / "o.safetensors")], ["r.json", "class 'b'", "question 1", "sum to 1.5"]),
    ("import-not-json", "lavid", lambda d, b: ["signature", "import", str(write(d / "r.json", "{oops")), "-o", str(d / "o.safetensors")],
     ["r.json", "cannot read as JSON"]),
    ("import-list", "lavid", lambda d, b: ["signature", "import", str(write(d / "r.json", "[1, 2]")), "-o", str(d / "o.safetensors")],
     ["r.json", "expected a JSON object"]),
    ("import-ragged", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5]], "b": [[1.0]]})),
                                             "-o", str(d / "o.safetensors")], ["r.json", "class 'b'", "option counts"]),
    ("import-empty-question-strict", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5], []], "b": [[0.5, 0.5], []]})),
                                                            "--strict", "-o", str(d / "o.safetensors")], ["r.json", "question(s) [2]"]),
    ("import-output-under-file", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5]], "b": [[0.5, 0.5]]})),
                                                        "-o", str(write(d / "file", "x") / "o.safetensors")], ["file", "is a file"]),
    ("import-questions-mismatch", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5], [0.5, 0.5]], "b": [[0.5, 0.5], [0.5, 0.5]]})),
                                                         "--questions", str(questions(d / "q.txt")), "-o", str(d / "o.safetensors")], ["r.json", "q.txt", "2 questions"]),
    ("import-unknown-group", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"a": [[0.5, 0.5]]})),
                                                    "--imagenet-group", "fish", "-o", str(d / "o.safetensors")], ["'fish'", "bird"]),
    ("import-class-missing", "lavid", lambda d, b: ["signature", "import", str(released(d / "r.json", {"Red Wren": [[0.5, 0.5]], "Blue Jay": [[0.5, 0.5]]})),
                                                    "--classes", str(classes(d / "c.json")), "-o", str(d / "o.safetensors")], ["r.json", "Green Finch"]),
    # signature files (lavid signature inspect)
    ("inspect-meta-not-json", "lavid", lambda d, b: ["signature", "inspect", str(sig_file(d / "s.safetensors", "{oops"))],
     ["s.safetensors", "not JSON"]),
    ("inspect-meta-no-classes", "lavid", lambda d, b: ["signature", "inspect", str(sig_file(d / "s.safetensors", "{}"))],
     ["s.safetensors", "class_names"]),
    ("inspect-no-meta", "lavid", lambda d, b: ["signature", "inspect", str(sig_file(d / "s.safetensors", None))],
     ["s.safetensors", "no 'lavid' metadata"]),
    ("inspect-garbage", "lavid", lambda d, b: ["signature", "inspect", str(write(d / "s.safetensors", "garbage"))],
     ["s.safetensors", "not a readable safetensors"]),
    ("inspect-missing", "lavid", lambda d, b: ["signature", "inspect", str(d / "nope.safetensors")], ["nope.safetensors", "not found"]),
    ("inspect-json", "lavid", lambda d, b: ["signature", "inspect", str(released(d / "r.json", {"a": [[1.0]]}))],
     ["r.json", "lavid signature import"]),
    ("inspect-inf", "lavid", lambda d, b: ["signature", "inspect", str(sig_file(d / "s.safetensors", json.dumps({"class_names": ["a", "b"]}),
                                                                                  torch.tensor([[0.5, math.inf], [0.5, 0.5]])))],
     ["s.safetensors", "class 'a'", "question 1", "non-finite"]),
    ("inspect-bad-attributes", "lavid", lambda d, b: ["signature", "inspect", str(random_signature(["a", "b"], counts=(2,)).save(d / "s.safetensors")),
                                                      "--attributes", str(write(d / "at.json", '{"a": [1], "b": [3]}'))], ["at.json", "class 'b'", "[1]"]),
    # question files and answering
    ("validate-single-option", "lavid", lambda d, b: ["signature", "validate", "--strict", str(questions(d / "q.txt", "Is the class red?\n1. Yes\n"))],
     ["q.txt:1", "single_option"]),
    ("validate-duplicate-options", "lavid", lambda d, b: ["signature", "validate", "--strict",
                                                          str(questions(d / "q.txt", "Colour of the class?\n1. Red\n2. red \n"))],
     ["q.txt:1", "duplicate_option", "'red'"]),
    ("extract-single-option", "lavid", lambda d, b: extract(d, q=questions(d / "q.txt", "Is the class red?\n1. Yes\n")), ["q.txt", "[1]", "fewer than 2"]),
    ("extract-no-questions", "lavid", lambda d, b: extract(d, q=write(d / "q.txt", "just prose\n")), ["q.txt", "no questions"]),
    ("extract-duplicate-class", "lavid", lambda d, b: extract(d, c=classes(d / "c.json", ["A", "B", "A"])), ["c.json", "'A' appears twice"]),
    ("extract-classes-bad-json", "lavid", lambda d, b: extract(d, c=write(d / "c.json", '["A",\n  "B"')), ["c.json:2", "invalid JSON"]),
    ("extract-unknown-backend", "lavid", lambda d, b: extract(d) + ["--backend", "gpt5"], ["'gpt5'", "llm", "embedding"]),
    ("extract-missing-model", "lavid", lambda d, b: extract(d, model=d / "models" / "qwen"), ["models/qwen", "no such model folder"]),
    ("extract-model-is-file", "lavid", lambda d, b: extract(d, model=write(d / "model.bin", "x")), ["model.bin", "it is a file"]),
    ("extract-output-under-file", "lavid", lambda d, b: extract(d, out=write(d / "file", "x") / "s.safetensors"), ["file", "is a file"]),
    ("extract-remote-code", "lavid", lambda d, b: extract(d, model=model_with_auto_map(d)), ["config.json", "auto_map", "--trust-remote-code"]),
    # configs and training
    ("yaml-syntax", "train", lambda d, b: train_cfg(d, b, cfg=write(d / "c.yaml", "SOLVER:\n  EPOCHS: [1,\nLOG: x\n")), ["c.yaml:", "not valid YAML"]),
    ("yaml-not-mapping", "train", lambda d, b: train_cfg(d, b, cfg=write(d / "c.yaml", "- SOLVER\n- LOG\n")), ["c.yaml", "top level must be a mapping"]),
    ("yaml-unknown-key", "train", lambda d, b: train_cfg(d, b, cfg=write(d / "c.yaml", "SOLVER:\n  EPOCH: 3\n")),
     ["c.yaml: unknown config key SOLVER.EPOCH"]),
    ("override-unknown-key", "train", lambda d, b: train_cfg(d, b, "LAVID.WEIGHT", "2"), ["overrides: unknown config key LAVID.WEIGHT"]),
    ("override-odd", "train", lambda d, b: train_cfg(d, b, "SOLVER.LR"), ["KEY VALUE pairs"]),
    ("override-type", "train", lambda d, b: train_cfg(d, b, "SOLVER.EPOCHS", "many"), ["SOLVER.EPOCHS"]),
    ("epochs-zero", "train", lambda d, b: train_cfg(d, b, "SOLVER.EPOCHS", "0"), ["SOLVER.EPOCHS", "at least 1"]),
    ("distiller-unknown", "train", lambda d, b: train_cfg(d, b, "DISTILLER.TYPE", "LAVIDD"), ["DISTILLER.TYPE 'LAVIDD'", "LAVID"]),
    ("lavid-base-unknown", "train", lambda d, b: train_cfg(d, b, "LAVID.BASE", "MLDK"), ["LAVID.BASE 'MLDK'", "MLKD"]),
    ("teacher-hint", "train", lambda d, b: train_cfg(d, b, "LAVID.BASE", "KD"), ["DISTILLER.TEACHER_CKPT", "DISTILLER.TEACHER to a visual model"]),
    ("teacher-ckpt-garbage", "train", lambda d, b: train_cfg(d, b, "LAVID.BASE", "KD", "DISTILLER.TEACHER", "resnet18",
                                                             "DISTILLER.TEACHER_CKPT", str(write(d / "t.pth", "garbage"))), ["t.pth", "teacher checkpoint"]),
    ("signature-missing", "train", lambda d, b: train_cfg(d, b, "LAVID.SIGNATURE", str(d / "nope.safetensors")), ["nope.safetensors", "not found"]),
    ("signature-empty-key", "train", lambda d, b: train_cfg(d, b, "LAVID.SIGNATURE", ""), ["LAVID.SIGNATURE is empty"]),
    ("signature-lacks-class", "train", lambda d, b: train_cfg(d, b, "LAVID.SIGNATURE",
                                                              str(random_signature(b[1][:-1], counts=(3, 3)).save(d / "s.safetensors"))),
     ["s.safetensors", "LAVID.SIGNATURE"]),
    ("dkd-warmup-zero", "train", lambda d, b: train_cfg(d, b, "DISTILLER.TYPE", "DKD", "DKD.WARMUP", "0"), ["DKD.WARMUP", "> 0"]),
    ("lavid-base-dkd-warmup-zero", "train", lambda d, b: train_cfg(d, b, "LAVID.BASE", "DKD", "DKD.WARMUP", "0"), ["DKD.WARMUP", "> 0"]),
    ("dataset-unknown", "train", lambda d, b: train_cfg(d, b, "DATASET.TYPE", "cub2011"), ["DATASET.TYPE 'cub2011'", "cub"]),
    ("dataset-layout", "train", lambda d, b: train_cfg(d, b, "DATASET.TYPE", "cub", "DATASET.ROOT", str(d / "cub")), ["images.txt", "expected under DATASET.ROOT"]),
    # resuming
    ("resume-nothing", "train", lambda d, b: train_cfg(d, b, "EXPERIMENT.NAME", "never") + ["--resume"], ["latest", "no checkpoint"]),
    ("resume-garbage", "train", lambda d, b: resume_run(d, b, lambda p: p.write_bytes(b"garbage")), ["latest", "cannot resume"]),
    ("resume-truncated", "train", lambda d, b: resume_run(d, b, truncate), ["latest", "cannot resume"]),
    ("resume-hostile", "train", lambda d, b: resume_run(d, b, lambda p: torch.save({"model": Hostile()}, p)), ["latest", "cannot resume"]),
    ("resume-foreign", "train", lambda d, b: resume_run(d, b, lambda p: torch.save({"model": {}}, p)), ["latest", "lacks"]),
    ("resume-config-changed", "train", lambda d, b: resume_run(d, b, None, "LAVID.LOSS.LAVID_WEIGHT", "3.0"),
     ["LAVID.LOSS.LAVID_WEIGHT", "1.0 -> 3.0", "--resume-force"]),
    ("resume-signature-changed", "train", signature_changed, ["LAVID.SIGNATURE", "content changed"]),
]


def _files(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize("name,command,build,must_name", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_message_and_leaves_nothing(name, command, build, must_name, birds, tmp_path,
                                                              capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build(tmp_path, birds)
    before = _files(tmp_path)
    try:
        rc = (lavid if command == "lavid" else train_main)([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    message = (err or out).strip()
    assert rc not in (0, None), message
    assert "Traceback" not in err + out and "weights_only=False" not in err and "set to `False`" not in err, message
    for part in must_name:
        assert part in message, f"{part!r} not in {message!r}"
    left = {p for p in _files(tmp_path) - before if "train.events" not in str(p)}
    assert not left, f"left behind: {sorted(map(str, left))}"
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "hostile-ran").exists()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40
