"""The plugin's KD, DKD and RKD equal upstream mdistiller's, and its KD, DKD and MLKD (with and without
logit standardization) equal the logit-standardization fork's, on the same random logits/features,
within 1e-6. Whichever of the two is installed is compared; the other's cases skip."""

import numpy as np
import pytest
import torch
from torch import nn

from mdistiller_support import require_mdistiller

VARIANT = require_mdistiller()

from lavid_plugin.config import load_cfg  # noqa: E402
from lavid_plugin.distillers import DKD, KD, MLKD, RKD  # noqa: E402

PLUGIN = {"KD": KD, "DKD": DKD, "RKD": RKD, "MLKD": MLKD}
K, B = 10, 8


class RandomNet(nn.Module):
    """Random but fixed logits and features as a function of the image (mdistiller's contract)."""

    def __init__(self, seed, dim=16):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w_feat = nn.Parameter(torch.randn(3 * 4 * 4, dim, generator=g))
        self.w_out = nn.Parameter(torch.randn(dim, K, generator=g) * 2)

    def forward(self, x):
        flat = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        pooled = torch.tanh(flat @ self.w_feat)
        fmap = pooled[:, :, None, None].expand(-1, -1, 2, 2)
        return pooled @ self.w_out, {"pooled_feat": pooled, "feats": [fmap], "preact_feats": [fmap]}


def compare(name, logit_stand, epoch=3):
    from mdistiller.distillers import distiller_dict as md

    cfg = load_cfg(None, ["EXPERIMENT.LOGIT_STAND", logit_stand] if VARIANT == "fork" else [])
    cfg.defrost()
    # the fork's MLKD reads KD.*, the plugin's MLKD.*: the same numbers in both
    cfg.KD.TEMPERATURE, cfg.KD.LOSS.CE_WEIGHT, cfg.KD.LOSS.KD_WEIGHT = 4, 0.5, 2.0
    cfg.MLKD.TEMPERATURE, cfg.MLKD.LOSS.CE_WEIGHT, cfg.MLKD.LOSS.KD_WEIGHT = 4.0, 0.5, 2.0
    cfg.DKD.WARMUP = 5
    cfg.freeze()
    student, teacher = RandomNet(1), RandomNet(2)
    g = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(B, 3, 8, 8, generator=g), torch.randn(B, 3, 8, 8, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    kwargs = {"image_weak": x, "image_strong": x2} if name == "MLKD" else {"image": x}
    theirs, ours = md[name](student, teacher, cfg).train(), PLUGIN[name](student, teacher, cfg).train()
    out_t, loss_t = theirs.forward_train(target=y, epoch=epoch, **kwargs)
    out_o, loss_o = ours.forward_train(target=y, epoch=epoch, **kwargs)
    assert torch.allclose(out_t, out_o, atol=1e-6)
    assert sorted(loss_t) == sorted(loss_o)
    for k in loss_t:
        assert float(loss_t[k]) == pytest.approx(float(loss_o[k]), abs=1e-6, rel=1e-6), k
        assert float(loss_t[k]) != 0.0 or k == "loss_cc", k  # a real comparison, not 0 == 0
    # the gradients they send to the student agree too
    gt = torch.autograd.grad(sum(v.mean() for v in loss_t.values()), student.w_out)[0]
    go = torch.autograd.grad(sum(v.mean() for v in loss_o.values()), student.w_out)[0]
    assert torch.allclose(gt, go, atol=1e-6)


@pytest.mark.parametrize("name", ["KD", "DKD", "RKD"])
def test_equal_to_upstream_mdistiller(name):
    if VARIANT != "upstream":
        pytest.skip("compares with upstream megvii-research/mdistiller; the fork is installed")
    compare(name, False)


@pytest.mark.parametrize("logit_stand", [False, True])
@pytest.mark.parametrize("name", ["KD", "DKD", "MLKD"])
def test_equal_to_the_logit_standardization_fork(name, logit_stand):
    if VARIANT != "fork":
        pytest.skip("compares with sunshangquan/logit-standardization-KD; upstream mdistiller is installed")
    np.random.seed(0)
    compare(name, logit_stand)
