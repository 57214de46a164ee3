"""mdistiller's whole zoo through the plugin's tools/train.py: one epoch of the (tiny) demo with each
of its distillers, a ResNet-18 student and a ResNet-50 teacher. Each either trains, or stops at once
with a clear "unsupported" error that says why (CRD: mdistiller's contrastive memory calls .cuda())."""

from pathlib import Path

import pytest
import torch

from mdistiller_support import require_mdistiller

VARIANT = require_mdistiller()

from helpers import small_demo  # noqa: E402
from lavid_plugin.distillers.zoo import mdistiller_zoo  # noqa: E402

NAMES = sorted(n.upper() for n, cls in mdistiller_zoo().items()
               if n != "NONE" and not cls.__module__.startswith(("lavid_plugin", "mdistiller_patches")))
#: pairs that cannot run here, and the reason their error must give
UNSUPPORTED = {"CRD": "needs CUDA"} if not torch.cuda.is_available() else {}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from lavid_plugin.models import build_model

    root = tmp_path_factory.mktemp("zoo")
    names = small_demo(root / "demo", train=2, test=1)
    torch.save({"model": build_model("resnet50", len(names)).state_dict()}, root / "r50.pth")
    return root


@pytest.mark.parametrize("name", NAMES)
def test_each_mdistiller_distiller_runs_an_epoch_or_says_why_not(name, demo, capsys):
    from lavid_plugin.cli.train import train_main

    cfg = Path(__file__).resolve().parents[1] / "configs" / "lavid" / "demo" / "res18_vanilla.yaml"
    rc = train_main(["--cfg", str(cfg), "DISTILLER.TYPE", f"MD_{name}", "DISTILLER.TEACHER", "resnet50",
                     "DISTILLER.TEACHER_CKPT", str(demo / "r50.pth"), "DATASET.ROOT", str(demo / "demo"),
                     "SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE", "8", "LOG.PREFIX", str(demo / "out"),
                     "EXPERIMENT.NAME", name, "DATASET.NUM_WORKERS", "0"])
    err = capsys.readouterr().err
    if name in UNSUPPORTED:
        assert rc == 2 and "unsupported" in err and UNSUPPORTED[name] in err and name in err
        assert not (demo / "out" / "demo" / name).exists()  # nothing half-made
    else:
        assert rc == 0, err
        log = (demo / "out" / "demo" / name / "worklog.txt").read_text()
        assert "test_acc" in log and "best_acc" in log


def test_crd_mllm_contrast_equals_mdistillers_crd_memory_and_loss(monkeypatch):
    """The plugin's CRD (CRD_MLLM, against bank features) computes mdistiller's ContrastMemory and
    ContrastLoss: same scores, normalising constants, loss and memory updates over two steps."""
    import importlib

    import torch.nn.functional as F

    md_crd = importlib.import_module("mdistiller.distillers.CRD")  # the module (the package exports the class)

    from lavid_plugin.distillers.CRD_MLLM import ContrastMemory, nce_loss

    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # its sampler calls .cuda()
    n, dim, k, bsz = 40, 16, 8, 6
    torch.manual_seed(0)
    theirs = md_crd.ContrastMemory(dim, n, k, 0.07, 0.5)
    crit = md_crd.ContrastLoss(n)
    ours = ContrastMemory(dim, n, k, 0.07, 0.5)
    ours.memory_s.copy_(theirs.memory_v1)
    ours.memory_t.copy_(theirs.memory_v2)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        v_s = F.normalize(torch.randn(bsz, dim, generator=g), dim=1)
        v_t = F.normalize(torch.randn(bsz, dim, generator=g), dim=1)
        idx = torch.randperm(n, generator=g)[:bsz]
        cidx = torch.cat([idx[:, None], torch.randint(0, n, (bsz, k), generator=g)], 1)
        out_v1, out_v2 = (o.squeeze(-1) for o in theirs(v_s, v_t, idx, cidx))  # theirs: [B, K + 1, 1]
        out_s, out_t = ours(v_s, v_t, idx, cidx)
        torch.testing.assert_close(out_s, out_v1)
        torch.testing.assert_close(out_t, out_v2)
        torch.testing.assert_close(nce_loss(out_s, n) + nce_loss(out_t, n), (crit(out_v1) + crit(out_v2)).reshape(()))
        torch.testing.assert_close(ours.memory_s, theirs.memory_v1)
        torch.testing.assert_close(ours.memory_t, theirs.memory_v2)
    torch.testing.assert_close(ours.z, theirs.params[2:4])
