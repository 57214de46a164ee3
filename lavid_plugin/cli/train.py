"""``tools/train.py`` and ``tools/eval.py`` (mdistiller's command line), single process or torchrun."""

from __future__ import annotations

import argparse
import os
import sys

import torch

from ..errors import LavidError
from ..utils import get_logger, set_verbosity


def train_main(argv=None) -> int:
    from ..config import load_cfg
    from ..demo import prepare_demo_teachers
    from ..engine.launch import train

    p = argparse.ArgumentParser("training for knowledge distillation (lavid-plugin)")
    p.add_argument("--cfg", type=str, required=True)
    p.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p.add_argument("--stop-after-epoch", type=int, default=None, help="end this process after that epoch (resume later)")
    p.add_argument("--resume-force", action="store_true",
                   help="resume although the config (or the signature) differs from the run's saved one")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER)
    p.add_argument("--overwrite", action="store_true",
                   help="start anew in a folder that holds a run: the old run is moved aside, never deleted")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    argv = list(sys.argv[1:] if argv is None else argv)
    anywhere = ("--resume", "--resume-force", "--overwrite", "-q", "--quiet", "-v", "--verbose")
    flags = [a for a in argv if a in anywhere]  # accepted anywhere, overrides included
    args = p.parse_args([a for a in argv if a not in flags])
    args.resume_force = "--resume-force" in flags
    args.resume = args.resume_force or "--resume" in flags
    args.overwrite = "--overwrite" in flags
    if args.overwrite and args.resume:
        print("train.py: error: --overwrite starts a new run; --resume continues one: give one of them", file=sys.stderr)
        return 2
    set_verbosity(quiet=bool({"-q", "--quiet"} & set(flags)), verbose=bool({"-v", "--verbose"} & set(flags)))
    try:
        cfg = load_cfg(args.cfg, args.opts)
        prepare_demo_teachers(cfg)
        trainer = train(cfg, args.resume, args.opts or [], stop_after_epoch=args.stop_after_epoch,
                        resume_force=args.resume_force, overwrite=args.overwrite)
    except LavidError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    if trainer.rank == 0:
        get_logger().info(f"best test accuracy {trainer.best_acc:.2f}; outputs in {trainer.log_path}")
    return 0


def eval_main(argv=None) -> int:
    from ..config import load_cfg
    from ..distillers import Vanilla
    from ..models import build_student, load_weights
    from ..engine.build import setup_data
    from ..engine.trainer import evaluate

    p = argparse.ArgumentParser("evaluate a trained student (lavid-plugin)")
    p.add_argument("--cfg", type=str, required=True)
    p.add_argument("--ckpt", type=str, required=True, help="student_best / student_latest / a state dict")
    p.add_argument("--split-dir", type=str, default=None,
                   help="run folder whose saved split to evaluate on (Caltech-101); default: the checkpoint's folder")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    set_verbosity(quiet=args.quiet)
    try:
        cfg = load_cfg(args.cfg, args.opts)
        run = setup_data(cfg, Vanilla, run_dir=args.split_dir or os.path.dirname(os.path.abspath(args.ckpt)))
        student = load_weights(build_student(cfg, run.splits.classes, pretrained=False), args.ckpt, "student")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        result = evaluate(Vanilla(student).to(device), run.val_loader, device, group_names=run.splits.group_names)
    except LavidError as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    print("  ".join(f"{k} {v:.4f}" if k == "test_loss" else f"{k} {v:.2f}" for k, v in result.items()))
    return 0
