#!/usr/bin/env python
"""Training step time, side by side on the same batch (one run, round-robin, medians):

- LaViD / vanilla (the head and its loss should cost almost nothing)
- DKD with a ResNet-50 teacher / vanilla
- LaViD+MLKD+LS with one student forward per view / the same with a second student forward
  (as the authors' code does)

    python scripts/bench_train.py [--size 112] [--batch 16] [--rounds 5]
"""

import argparse
import statistics
import time

import torch

from lavid_plugin.config import load_cfg
from lavid_plugin.distillers import DKD, LaViD, Vanilla, lavid_loss
from lavid_plugin.models import build_model
from lavid_plugin.signature.llm_signature import LLMSignature


class LaViDSecondForward(LaViD):
    """The authors' LaViD+MLKD: the base runs its own student forwards, LaViD runs one more."""

    def forward_train(self, image=None, target=None, image_weak=None, image_strong=None, **kwargs):
        _, base_losses = self.base.forward_train(image_weak=image_weak, image_strong=image_strong, target=target, **kwargs)
        losses = {k: self.ce_weight * v for k, v in base_losses.items()}
        logits, feats = self.student(image_weak)  # the second forward of the weak view
        losses["loss_lavid"] = self.lavid_weight * lavid_loss(self.head(feats["pooled_feat"]), self.signature(target))
        return logits, losses


def make_step(d, dev, x, x2, y, two_views):
    """One training step of distiller ``d`` on a fixed batch (bf16 autocast and channels_last on CUDA)."""
    amp = dev.type == "cuda"
    d = d.to(dev)
    if amp:
        d = d.to(memory_format=torch.channels_last)
    d.train()
    opt = torch.optim.SGD(d.get_learnable_parameters(), lr=1e-3, momentum=0.9)
    kw = {"image_weak": x, "image_strong": x2} if two_views else {"image": x}

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            _, losses = d(target=y, epoch=1, **kw)
        sum(v.float().mean() for v in losses.values()).backward()
        opt.step()
        if amp:
            torch.cuda.synchronize()

    step()  # warm-up
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    amp = dev.type == "cuda"
    K, Q, M = args.classes, 50, 5
    torch.manual_seed(0)
    names = [f"class {i}" for i in range(K)]
    sig = LLMSignature(names, torch.softmax(torch.randn(K, Q, M), -1).reshape(K, Q * M), list(range(0, Q * M + 1, M)))
    cfg = load_cfg(None, ["EXPERIMENT.LOGIT_STAND", "True", "DKD.WARMUP", "1"])
    cfg_mlkd = load_cfg(None, ["EXPERIMENT.LOGIT_STAND", "True", "LAVID.BASE", "MLKD"])

    def student():
        torch.manual_seed(1)
        return build_model("resnet18", K)

    teacher = build_model("resnet50", K).requires_grad_(False)
    methods = {
        "vanilla": Vanilla(student()),
        "lavid": LaViD(student(), sig, cfg),
        "dkd_r50": DKD(student(), teacher, cfg),
        "lavid_mlkd_ls_shared": LaViD(student(), teacher, cfg_mlkd, signature=sig),
        "lavid_mlkd_ls_second": LaViDSecondForward(student(), teacher, cfg_mlkd, signature=sig),
    }
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(dev)
    x2 = x.flip(-1)
    y = torch.randint(0, K, (args.batch,), generator=g).to(dev)
    if amp:
        x, x2 = x.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
    steps = {name: make_step(d, dev, x, x2, y, two_views="mlkd" in name) for name, d in methods.items()}
    times = {n: [] for n in steps}
    for _ in range(args.rounds):
        for n, step in steps.items():
            t = time.perf_counter()
            step()
            times[n].append(time.perf_counter() - t)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"device={dev} batch={args.batch} size={args.size} classes={K} Q*M={Q * M} rounds={args.rounds} "
          f"threads={torch.get_num_threads()}")
    for n, v in med.items():
        print(f"  {n:<24}{v * 1000:>9.1f} ms/step")
    print(f"LaViD / vanilla:                          {med['lavid'] / med['vanilla']:.3f}")
    print(f"DKD+ResNet-50 / vanilla:                  {med['dkd_r50'] / med['vanilla']:.3f}")
    print(f"LaViD+MLKD+LS shared / second forward:    {med['lavid_mlkd_ls_shared'] / med['lavid_mlkd_ls_second']:.3f}")


if __name__ == "__main__":
    main()
