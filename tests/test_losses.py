"""Each loss against an independent plain implementation (loops, explicit formulas)."""

import math

import pytest
import torch

from lavid_plugin.distillers import dkd_loss, kd_loss, lavid_loss, mlkd_loss, rkd_loss

torch.manual_seed(0)
B, C = 8, 7


def z(x):  # logit standardization, written out
    m = sum(x) / len(x)
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1))
    return [(v - m) / (1e-7 + sd) for v in x]


def softmax(x, T=1.0):
    e = [math.exp(v / T) for v in x]
    s = sum(e)
    return [v / s for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q) if a > 0)


def plain_kd(s, t, T, ls):
    total = 0.0
    for si, ti in zip(s.tolist(), t.tolist()):
        if ls:
            si, ti = z(si), z(ti)
        total += kl(softmax(ti, T), softmax(si, T)) * T * T
    return total / len(s)


def plain_dkd(s, t, y, alpha, beta, T, ls):
    tc = nc = 0.0
    for si, ti, yi in zip(s.tolist(), t.tolist(), y.tolist()):
        if ls:
            si, ti = z(si), z(ti)
        ps, pt = softmax(si, T), softmax(ti, T)
        tc += kl([pt[yi], 1 - pt[yi]], [ps[yi], 1 - ps[yi]])
        rest_s = [v for j, v in enumerate(si) if j != yi]
        rest_t = [v for j, v in enumerate(ti) if j != yi]
        nc += kl(softmax(rest_t, T), softmax(rest_s, T))
    return (alpha * tc + beta * nc) * T * T / len(s)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(B, C, generator=g, dtype=torch.float64) * 3
    t = torch.randn(B, C, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, C, (B,), generator=g)
    return s, t, y


@pytest.mark.parametrize("ls", [False, True])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kd(logits, ls, T):
    s, t, _ = logits
    assert float(kd_loss(s, t, T, ls)) == pytest.approx(plain_kd(s, t, T, ls), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("ls", [False, True])
def test_dkd(logits, ls):
    s, t, y = logits
    got = float(dkd_loss(s, t, y, 1.0, 8.0, 4.0, ls))
    assert got == pytest.approx(plain_dkd(s, t, y, 1.0, 8.0, 4.0, ls), rel=1e-6)


def test_rkd():
    g = torch.Generator().manual_seed(2)
    fs = torch.randn(6, 5, generator=g, dtype=torch.float64)
    ft = torch.randn(6, 9, generator=g, dtype=torch.float64)

    def dists(f):
        n = len(f)
        d = [[math.dist(f[i], f[j]) for j in range(n)] for i in range(n)]
        mean = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * n - n)
        return [[d[i][j] / mean for j in range(n)] for i in range(n)]

    def angles(f):
        n, out = len(f), []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    a = [x - y for x, y in zip(f[i], f[j])]
                    b = [x - y for x, y in zip(f[k], f[j])]
                    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
                    out.append(sum(x * y for x, y in zip(a, b)) / (max(na, 1e-12) * max(nb, 1e-12)))
        return out

    def huber(a, b):
        vals = [abs(x - y) for x, y in zip(a, b)]
        return sum(0.5 * v * v if v < 1 else v - 0.5 for v in vals) / len(vals)

    s, t = fs.tolist(), ft.tolist()
    ds, dt = dists(s), dists(t)
    loss_d = huber([x for r in ds for x in r], [x for r in dt for x in r])
    loss_a = huber(angles(s), angles(t))
    assert float(rkd_loss(fs, ft)) == pytest.approx(25 * loss_d + 50 * loss_a, rel=1e-6)


def test_lavid_is_mean_squared_error_per_output():
    g = torch.Generator().manual_seed(3)
    pred, tgt = torch.randn(5, 12, generator=g), torch.rand(5, 12, generator=g)
    expected = sum(((pred[i] - tgt[i]) ** 2).sum().item() / 12 for i in range(5)) / 5
    assert float(lavid_loss(pred, tgt)) == pytest.approx(expected, rel=1e-6)


def plain_mlkd(sw, ss, tw, ts, y, T, ce_w, kd_w, ls):
    """The fork's MLKD, term by term."""
    import numpy as np

    def ce(s):
        return sum(-math.log(softmax(r)[k]) for r, k in zip(s.tolist(), y.tolist())) / len(s)

    def probs(x, t):
        return torch.tensor([softmax(r, t) for r in x.tolist()], dtype=torch.float64)

    def cc(s, t, temp):
        ps, pt = probs(s, temp), probs(t, temp)
        return float(((pt.T @ pt - ps.T @ ps) ** 2).sum()) / s.shape[1]

    def bc(s, t, temp):
        ps, pt = probs(s, temp), probs(t, temp)
        return float(((pt @ pt.T - ps @ ps.T) ** 2).sum()) / s.shape[0]

    pt = probs(tw, 1.0).numpy()
    conf = pt.max(1)
    mask = (conf <= np.percentile(conf, 50)).mean()
    cconf = pt.sum(0)
    cmask = (cconf <= np.percentile(cconf, 50)).mean()
    temps = [T, 3.0, 5.0, 2.0, 6.0]
    kd_weak = sum(plain_kd(sw, tw, t, ls) * mask for t in temps)
    kd_strong = (plain_kd(ss, ts, T, ls) + plain_kd(ss, ts, 3.0, ls) + plain_kd(ss, ts, 5.0, ls)
                 + plain_kd(sw, tw, 2.0, ls) + plain_kd(sw, tw, 6.0, ls))
    return {"loss_ce": ce_w * (ce(sw) + ce(ss)), "loss_kd": kd_w * (kd_weak + kd_strong),
            "loss_cc": kd_w * sum(cc(sw, tw, t) * cmask for t in temps),
            "loss_bc": kd_w * sum(bc(sw, tw, t) * mask for t in temps)}


@pytest.mark.parametrize("ls", [False, True])
def test_mlkd(logits, ls):
    sw, tw, y = logits
    g = torch.Generator().manual_seed(4)
    ss, ts = sw + torch.randn(B, C, generator=g, dtype=torch.float64), tw + torch.randn(B, C, generator=g, dtype=torch.float64)
    got = mlkd_loss(sw, ss, tw, ts, y, 4.0, 0.5, 2.0, ls)
    want = plain_mlkd(sw, ss, tw, ts, y, 4.0, 0.5, 2.0, ls)
    assert set(got) == set(want)
    for k in want:
        assert float(got[k]) == pytest.approx(want[k], rel=1e-6, abs=1e-9), k
