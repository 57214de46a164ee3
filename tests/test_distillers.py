import pytest
import torch

from helpers import random_signature, tiny_cfg
from lavid_plugin.distillers import PLUGIN_DISTILLERS, LaViD, distiller_dict, lavid_loss
from lavid_plugin.errors import LavidError
from lavid_plugin.models import build_model
from lavid_plugin.teacher_files import LoadedTeacher

K = 4
NAMES = ["wren", "jay", "finch", "tit"]


def make(kind, base="NONE", ls=False, signature=None):
    cfg = tiny_cfg(DISTILLER__TYPE=kind, LAVID__BASE=base, EXPERIMENT__LOGIT_STAND=ls, DKD__WARMUP=1)
    torch.manual_seed(0)
    student = build_model("resnet18", K)
    cls = distiller_dict[kind]
    teacher = build_model("resnet18", K).requires_grad_(False) if cls.needs_teacher(cfg) else None
    sig = signature or random_signature(NAMES)

    class Ctx:  # the build context's part a distiller sees: its precomputed teacher, aligned
        def load_teacher(self, spec):
            if spec.per == "sample":  # a per-image bank (MaKD, FitNet / CRD on MLLM features): 6 training images
                from lavid_plugin.image_teacher import SampleBank

                g = torch.Generator().manual_seed(1)
                return LoadedTeacher(SampleBank([f"img{i}.jpg" for i in range(6)],
                                                {"p_yes": torch.rand(6, 5, generator=g),
                                                 "last-12": torch.randn(6, 16, generator=g).half()}))
            assert spec.per == "class" and spec.key == "LAVID.SIGNATURE"
            return LoadedTeacher(sig)

    return cls.build(student, teacher, cfg, Ctx()), cfg


def batch(views, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    if views == ("weak", "strong"):
        return {"image_weak": x, "image_strong": x.flip(-1)}, y
    return {"image": x}, y


@pytest.mark.parametrize("kind", sorted(PLUGIN_DISTILLERS))  # mdistiller's zoo: test_mdistiller_zoo.py
def test_every_distiller_trains_like_mdistiller(kind):
    d, cfg = make(kind, base="MLKD" if kind == "LAVID" else "NONE")
    d.train()
    opt = torch.optim.SGD(d.get_learnable_parameters(), lr=0.1, momentum=0.9)
    kwargs, y = batch(type(d).views_for(cfg))
    before = {k: v.clone() for k, v in d.student.state_dict().items()}
    head_before = d.head.weight.clone() if kind == "LAVID" else None
    if type(d).precomputed_teacher(cfg) is not None and type(d).precomputed_teacher(cfg).per == "sample":
        kwargs["index"] = torch.arange(6)  # the batch's sample indices (the bridge's `sample` trainer)
    preds, losses = d(target=y, epoch=1, **kwargs)  # mdistiller: distiller(image=..., target=..., epoch=...)
    loss = sum(v.mean() for v in losses.values())
    assert torch.isfinite(loss) and preds.shape == (6, K)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = any(not torch.equal(before[k], v) for k, v in d.student.state_dict().items())
    assert changed
    if kind == "LAVID":
        assert not torch.equal(head_before, d.head.weight)
        assert d.get_extra_parameters() == d.head.weight.numel() + d.head.bias.numel()
        assert any(p is d.head.weight for p in d.get_learnable_parameters())
    if d.teacher is not None:
        assert not d.teacher.training
    d.eval()
    assert d(image=kwargs.get("image", kwargs.get("image_weak"))).shape == (6, K)


def test_lavid_with_mlkd_runs_the_student_once_per_view():
    d, cfg = make("LAVID", base="MLKD", ls=True)
    calls = {"student": 0, "teacher": 0}
    d.student.register_forward_hook(lambda *a: calls.__setitem__("student", calls["student"] + 1))
    d.teacher.register_forward_hook(lambda *a: calls.__setitem__("teacher", calls["teacher"] + 1))
    d.train()
    kwargs, y = batch(("weak", "strong"))
    _, losses = d(target=y, epoch=1, **kwargs)
    assert calls == {"student": 2, "teacher": 2}
    assert {"loss_ce", "loss_kd", "loss_cc", "loss_bc", "loss_lavid"} <= set(losses)


def test_lavid_alone_loss_is_ce_plus_lambda_mse():
    sig = random_signature(NAMES)
    d, cfg = make("LAVID", signature=sig)
    assert d.teacher is sig  # LaViD alone: the signature is the teacher
    d.train()
    kwargs, y = batch(("image",))
    _, losses = d(target=y, epoch=1, **kwargs)
    logits, feats = d.student(kwargs["image"])
    pred = d.head(feats["pooled_feat"])
    expected = ((pred - sig.probs[y]) ** 2).sum(1).mean() / sig.dim
    assert float(losses["loss_lavid"]) == pytest.approx(40.0 * float(expected), rel=1e-5)
    assert float(losses["ce"]) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)


def test_alignment_by_name_gives_the_same_loss():
    sig = random_signature(NAMES)
    perm = [2, 0, 3, 1]
    shuffled = type(sig)([NAMES[i] for i in perm], sig.probs[perm], sig.offsets)
    aligned = shuffled.align(NAMES)
    d1, _ = make("LAVID", signature=sig)
    d2, _ = make("LAVID", signature=aligned)
    d2.load_state_dict(d1.state_dict())
    kwargs, y = batch(("image",))
    d1.train(), d2.train()
    l1 = d1(target=y, epoch=1, **kwargs)[1]["loss_lavid"]
    l2 = d2(target=y, epoch=1, **kwargs)[1]["loss_lavid"]
    assert float(l1) == pytest.approx(float(l2), rel=1e-6)
    d3, _ = make("LAVID", signature=shuffled)  # unaligned: targets go to the wrong classes
    d3.load_state_dict(d1.state_dict())
    d3.train()
    assert float(d3(target=y, epoch=1, **kwargs)[1]["loss_lavid"]) != pytest.approx(float(l1), rel=1e-3)


def test_bad_lavid_settings_are_rejected_when_built():
    cfg = tiny_cfg(LAVID__BASE="KD")
    with pytest.raises(LavidError, match="needs a visual teacher"):
        LaViD(build_model("resnet18", K), random_signature(NAMES), cfg)
    with pytest.raises(LavidError, match=r"LAVID.BASE 'NOPE' is not a registered distiller; choices: \[") as e:
        LaViD(build_model("resnet18", K), random_signature(NAMES), tiny_cfg(LAVID__BASE="NOPE"))
    choices = str(e.value).split("choices: ")[1]
    assert all(f"'{k}'" in choices for k in ("DKD", "KD", "MLKD", "NONE", "RKD")) and "'LAVID'" not in choices


@pytest.mark.parametrize("name,channels", [("resnet18", [64, 64, 128, 256, 512]), ("resnet50", [64, 256, 512, 1024, 2048]),
                                           ("mobilenetv2", [32, 24, 32, 96, 1280]),
                                           ("shufflenetv2", [24, 116, 232, 464, 1024])])
def test_models_follow_mdistillers_feature_contract(name, channels):
    m = build_model(name, 5).eval()
    logits, feats = m(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5)
    assert m.get_stage_channels() == channels
    assert [f.shape[1] for f in feats["feats"]] == channels  # one per feature map, stem first
    bns = [b.num_features for b in m.get_bn_before_relu()]
    # a ShuffleNetV2 stage concatenates two branches: its last BN covers the half it computes
    assert bns == ([c // 2 for c in channels[1:-1]] + channels[-1:] if name == "shufflenetv2" else channels[1:])
    assert feats["pooled_feat"].shape == (2, m.num_features)
    assert len(feats["preact_feats"]) == len(feats["feats"])
    if name.startswith("resnet"):  # pre-activation really is before the final ReLU
        assert (feats["preact_feats"][-1] < 0).any() and torch.equal(feats["feats"][-1], feats["preact_feats"][-1].relu())


def test_teacher_checkpoint_errors_name_the_problem(tmp_path):
    from lavid_plugin.models import load_weights

    torch.save({"model": build_model("resnet18", 3).state_dict()}, tmp_path / "r18.pth")
    with pytest.raises(LavidError, match=r"r18.pth: does not fit the teacher .*shape mismatch fc.weight"):
        load_weights(build_model("resnet18", 5), tmp_path / "r18.pth", "teacher")
    with pytest.raises(LavidError, match="missing keys"):
        load_weights(build_model("resnet50", 3), tmp_path / "r18.pth", "teacher")
    m = load_weights(build_model("resnet18", 3), tmp_path / "r18.pth", "teacher")
    assert isinstance(m, torch.nn.Module)


def test_lambda_warning_and_scale_to_paper(capsys):
    sig = random_signature(NAMES, counts=(2, 2, 4))  # Q*M = 8: a small custom signature
    user = tiny_cfg(SOLVER__LR=0.02, LAVID__LOSS__LAVID_WEIGHT=4.0)  # the step is 6x the paper's
    d = LaViD(build_model("resnet18", K), sig, user)
    err = capsys.readouterr().err
    assert "6.2x the paper's 0.0016" in err and "lambda 0.64 would match it" in err and d.lavid_weight == 4.0
    paper = random_signature(NAMES, counts=(5,) * 50)  # the paper: lr 0.01, lambda 40, Q*M 250
    LaViD(build_model("resnet18", K), paper, tiny_cfg(SOLVER__LR=0.01, LAVID__LOSS__LAVID_WEIGHT=40.0))
    assert "warning" not in capsys.readouterr().err
    scaled = LaViD(build_model("resnet18", K), sig, tiny_cfg(SOLVER__LR=0.01, LAVID__LOSS__LAVID_WEIGHT=40.0,
                                                             LAVID__LOSS__SCALE_TO_PAPER=True))
    assert scaled.lavid_weight == 40.0 * 8 / 250  # the head's step lr*lambda/(Q*M) is the paper's 0.0016 again
    assert "warning" not in capsys.readouterr().err
