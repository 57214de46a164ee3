"""The ``lavid`` command: ``lavid signature ...`` (Stage 1), ``lavid teacher ...`` (Stage 1b), ``lavid demo``,
``lavid report``."""

from __future__ import annotations

import argparse
import sys

from ..errors import LavidError


def build_parser() -> argparse.ArgumentParser:
    from . import signature as sig_cli

    p = argparse.ArgumentParser(prog="lavid", description="LaViD: an LLM teaches a vision student (mdistiller plugin)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_, entry in (("train", "train a config (= tools/train.py: --cfg FILE [--resume] [KEY VALUE ...])",
                                "train_main"),
                               ("eval", "evaluate a student (= tools/eval.py: --cfg FILE --ckpt FILE)", "eval_main")):
        t = sub.add_parser(name, help=help_, add_help=False, prefix_chars="\0")
        t.add_argument("rest", nargs=argparse.REMAINDER)
        t.set_defaults(func=lambda a, entry=entry: getattr(__import__("lavid_plugin.cli.train", fromlist=[entry]),
                                                           entry)(a.rest))
    sig_cli.add_parser(sub)
    from . import teacher as teacher_cli

    teacher_cli.add_parser(sub)
    d = sub.add_parser("demo", help="the embedded demo: vanilla, LaViD and a reference LaViD on generated birds, side by side")
    d.add_argument("--root", default="./data/demo_birds", help="where the demo images are generated")
    d.add_argument("--output", default="./output", help="LOG.PREFIX of the runs")
    d.add_argument("--epochs", type=int, default=None)
    d.add_argument("--seed", type=int, default=0, help="the first seed")
    d.add_argument("--seeds", type=int, default=1, help="seeds per row: prints mean ± std and each seed's value")
    d.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                   help="config overrides for every row (e.g. DATASET.NUM_WORKERS 2)")
    d.set_defaults(func=lambda a: __import__("lavid_plugin.demo", fromlist=["run"]).run(a))
    from ..report import add_parser as add_report

    add_report(sub)
    from ..status import add_parser as add_status

    add_status(sub)
    from ..gradcam import add_parser as add_gradcam

    add_gradcam(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..utils import set_verbosity

    set_verbosity(quiet=args.quiet, verbose=args.verbose)
    try:
        return int(args.func(args) or 0)
    except LavidError as e:
        print(f"lavid: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
