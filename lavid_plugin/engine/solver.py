"""Optimizer and learning-rate schedule from ``SOLVER``: SGD with mdistiller's step decay (the default,
the paper's CNN recipe), or AdamW and/or a cosine schedule with linear warm-up (Table 2's transformers as the
paper describes them; the authors' code runs ViT-B/16 with the step schedule, CLIP with cosine).

The learning rate is set once per epoch (mdistiller's convention; epochs count from 1):

* ``step``: ``LR * LR_DECAY_RATE ** (number of LR_DECAY_STAGES passed)``;
* ``cosine``: ``LR * e / W`` during the ``W = WARMUP_EPOCHS`` warm-up epochs, then
  ``MIN_LR + (LR - MIN_LR) * (1 + cos(pi * t / T)) / 2`` with ``t = e - 1 - W`` and
  ``T = EPOCHS - W``; with no warm-up this is PyTorch's ``CosineAnnealingLR(T_max=EPOCHS)`` stepped
  per epoch, as the authors' code uses it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import LavidError

TYPES = ("SGD", "ADAMW")
SCHEDULERS = ("step", "cosine")


def check_solver(cfg) -> None:
    """Refuse a ``SOLVER`` that cannot run as written, before anything is built or written."""
    s = cfg.SOLVER
    if str(s.TYPE).upper() not in TYPES:
        raise LavidError(f"SOLVER.TYPE {s.TYPE!r} is not supported; use SGD or AdamW")
    if str(s.SCHEDULER) not in SCHEDULERS:
        raise LavidError(f"SOLVER.SCHEDULER {s.SCHEDULER!r} is not supported; use one of {SCHEDULERS}")
    if s.WARMUP_EPOCHS < 0:
        raise LavidError(f"SOLVER.WARMUP_EPOCHS must be >= 0, got {s.WARMUP_EPOCHS}")
    if s.WARMUP_EPOCHS and s.SCHEDULER != "cosine":
        raise LavidError(f"SOLVER.WARMUP_EPOCHS {s.WARMUP_EPOCHS} has no effect with SOLVER.SCHEDULER {s.SCHEDULER!r} "
                         f"(the warm-up belongs to the cosine schedule): set SOLVER.SCHEDULER cosine or "
                         f"SOLVER.WARMUP_EPOCHS 0")
    if s.WARMUP_EPOCHS >= s.EPOCHS:
        raise LavidError(f"SOLVER.WARMUP_EPOCHS {s.WARMUP_EPOCHS} >= SOLVER.EPOCHS {s.EPOCHS}: the run would end "
                         f"before the learning rate reaches SOLVER.LR; shorten the warm-up")


def build_optimizer(cfg, params):
    check_solver(cfg)
    kind = str(cfg.SOLVER.TYPE).upper()
    if kind == "SGD":
        return torch.optim.SGD(params, lr=cfg.SOLVER.LR, momentum=cfg.SOLVER.MOMENTUM,
                               weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    return torch.optim.AdamW(params, lr=cfg.SOLVER.LR, betas=tuple(cfg.SOLVER.BETAS),
                             weight_decay=cfg.SOLVER.WEIGHT_DECAY)


def lr_at(cfg, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (1-based)."""
    s = cfg.SOLVER
    if s.SCHEDULER == "step":
        return s.LR * (s.LR_DECAY_RATE ** int(np.sum(epoch > np.asarray(s.LR_DECAY_STAGES))))
    warm = int(s.WARMUP_EPOCHS)
    if epoch <= warm:
        return s.LR * epoch / warm
    t, total = epoch - 1 - warm, max(s.EPOCHS - warm, 1)
    return s.MIN_LR + (s.LR - s.MIN_LR) * (1 + math.cos(math.pi * t / total)) / 2
