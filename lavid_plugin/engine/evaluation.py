"""Evaluation and metric helpers of the trainer: accuracy, step values summed on the device
(:class:`StepSums`), and ``evaluate`` (top-1/top-5/loss over a loader, per-group accuracies for
Waterbirds)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..data.transforms import to_model_input


def accuracy(output, target, topk=(1,)):
    with torch.no_grad():
        maxk = min(max(topk), output.shape[1])
        pred = output.topk(maxk, 1, True, True).indices.t()
        correct = pred.eq(target.reshape(1, -1).expand_as(pred))
        return [correct[:min(k, maxk)].reshape(-1).float().sum() * 100.0 / target.shape[0] for k in topk]


def group_key(name: str) -> str:
    return "test_acc_" + "_".join(name.split())


@torch.no_grad()
def evaluate(model, loader, device, *, autocast=contextlib.nullcontext, world=1, group_names=None):
    """``OrderedDict(test_acc, test_acc_top5, test_loss)`` over ``loader`` (%, %, mean CE); shards are
    summed across DDP ranks. With ``group_names`` (batches ``(image, target, group)``) it adds each
    group's accuracy, their average ``test_acc_avg_group`` and ``test_acc_worst_group``; ``test_acc``
    stays the accuracy over all images."""
    model.eval()
    n_groups = len(group_names) if group_names else 0
    stats = torch.zeros(4 + 2 * n_groups, dtype=torch.float64)  # correct1, correct5, loss, count, per group
    for batch in loader:
        if batch is None:  # every image of the batch was unreadable
            continue
        image, target, *rest = batch
        image, target = to_model_input(image.to(device)), target.to(device)
        with autocast():
            out = model(image=image).float()
        k = min(5, out.shape[1])
        top = out.topk(k, 1).indices
        hit1 = (top[:, 0] == target).double().cpu()
        stats[0] += hit1.sum()
        stats[1] += (top == target[:, None]).any(1).double().sum().cpu()
        stats[2] += float(F.cross_entropy(out, target, reduction="sum"))
        stats[3] += target.shape[0]
        if n_groups and rest:
            g = rest[0].long().cpu()
            stats[4:4 + n_groups] += torch.bincount(g, weights=hit1, minlength=n_groups)[:n_groups]
            stats[4 + n_groups:] += torch.bincount(g, minlength=n_groups)[:n_groups].double()
    if world > 1:
        t = stats.to(device)
        dist.all_reduce(t)
        stats = t.cpu()
    count = max(float(stats[3]), 1.0)
    result = OrderedDict(test_acc=100.0 * float(stats[0]) / count, test_acc_top5=100.0 * float(stats[1]) / count,
                         test_loss=float(stats[2]) / count)
    if n_groups:
        accs = [100.0 * float(c) / max(float(n), 1.0) for c, n in zip(stats[4:4 + n_groups], stats[4 + n_groups:])]
        for name, a in zip(group_names, accs):
            result[group_key(name)] = a
        result["test_acc_avg_group"] = sum(accs) / n_groups
        result["test_acc_worst_group"] = min(accs)
        result["test_acc_best_group"] = max(accs)
    return result


class StepSums:
    """Per-step values (loss terms, accuracies) summed where they live, on the device: adding one
    does not wait for the GPU. :meth:`means` reads them back, one synchronisation per call."""

    def __init__(self):
        self.sums: dict = {}
        self.count = 0

    def add(self, values: dict, n: int) -> None:
        for k, v in values.items():
            v = v.detach().float() * n
            self.sums[k] = v if k not in self.sums else self.sums[k] + v
        self.count += n

    def means(self, world: int = 1) -> dict:
        """Mean of each value over the samples added (over every DDP rank's samples with ``world > 1``)."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        t = torch.stack([self.sums[k] for k in keys] + [torch.tensor(float(self.count), device=self.sums[keys[0]].device)])
        if world > 1:
            t = t.double()
            dist.all_reduce(t)
        values = t.tolist()
        return {k: v / max(values[-1], 1.0) for k, v in zip(keys, values[:-1])}
