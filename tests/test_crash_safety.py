"""Fault injection: training is killed (SIGKILL) at chosen points of writing an epoch's files, then
resumed; the result equals the uninterrupted run's, and the run folder holds no debris."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import random_signature, small_demo
from lavid_plugin.engine.checkpoints import worklog_blocks

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lavid" / "demo"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    names = small_demo(root / "birds", train=2, test=1)
    random_signature(names).save(root / "sig.safetensors")
    return root


def run(root, name, *extra, fault=None):
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "--cfg", str(DEMO / "res18.yaml"),
           "DATASET.ROOT", str(root / "birds"), "DATASET.IMAGE_SIZE", "32", "SOLVER.BATCH_SIZE", "8",
           "SOLVER.EPOCHS", "2", "LAVID.SIGNATURE", str(root / "sig.safetensors"), "LAVID.LOSS.LAVID_WEIGHT", "1.0",
           "LOG.PREFIX", str(root / "out"), "EXPERIMENT.NAME", name, "DISTILLER.STUDENT", "resnet_tiny", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if fault:
        env["LAVID_FAULT"] = fault
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def results(folder):
    log = (folder / "worklog.txt").read_text()
    student = torch.load(folder / "student_latest", weights_only=True)["model"]
    return log, student


@pytest.mark.parametrize("fault", ["checkpoint-temp:2", "before-worklog:1"])
def test_a_kill_while_writing_an_epoch_resumes_to_the_uninterrupted_result(setup, fault):
    root = setup
    if not (root / "out" / "demo" / "straight" / "worklog.txt").is_file():
        assert run(root, "straight").returncode == 0
    straight_log, straight_student = results(root / "out" / "demo" / "straight")
    name = fault.replace(":", "_")
    killed = run(root, name, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = root / "out" / "demo" / name
    epoch = int(fault.split(":")[1])
    if fault.startswith("checkpoint-temp"):  # a half-written checkpoint, the worklog only up to the epoch before
        assert list(folder.glob(".latest.*.tmp"))
        assert [e for e, _ in worklog_blocks((folder / "worklog.txt").read_text())] == list(range(1, epoch))
    else:  # the checkpoint exists, its worklog block does not
        assert torch.load(folder / "latest", weights_only=True)["epoch"] == epoch
        assert not (folder / "worklog.txt").exists() or "epoch: 1" not in (folder / "worklog.txt").read_text()
    resumed = run(root, name, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log, student = results(folder)
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    assert log == straight_log  # each epoch once, the same numbers, the closing best_acc line
    assert log.endswith("\n") and log.count("best_acc") == 1
    assert max((student[k].float() - straight_student[k].float()).abs().max().item() for k in student) < 1e-6
