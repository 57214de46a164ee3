"""Launch (or print) every run of one of the paper's tables, skipping finished runs.

    python scripts/reproduce.py --table 1 --seeds 3 [--datasets cub flowers] [--students res18]
                                [--methods vanilla lavid] [--prefix ./output] [--dry-run]

Runs ``tools/train.py`` once per (config, seed), one after another, with ``EXPERIMENT.SEED k`` and
``EXPERIMENT.NAME <config>_seed<k>``, under ``--prefix``. The ResNet-50 teacher of a dataset
(``res50_vanilla.yaml``, seed 0) runs first when a row needs it. A run whose worklog ends with
mdistiller's ``best_acc`` line is skipped; one that stopped half-way is resumed (``--resume``).
Afterwards: ``lavid report <prefix> --table N``.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import make_configs as mc  # noqa: E402


def cells(table: int, datasets, students, methods):
    """``(dataset folder, config file)`` of every run of the table, teachers first per dataset."""
    if table == 1:
        plan = [(d, s, m) for d in datasets or mc.DATASETS for s in students or mc.STUDENTS
                for m in methods or mc.TABLE1_METHODS]
    elif table == 3:
        plan = [(f"imagenet_{g}", "res18", m) for g in datasets or mc.IMAGENET_GROUPS for m in methods or mc.TABLE3_METHODS]
    elif table == 4:
        plan = [("waterbirds", s, m) for s in students or mc.STUDENTS for m in methods or mc.TABLE4_METHODS]
    else:
        raise SystemExit(f"--table must be 1, 3 or 4, got {table}")
    out = []
    for d in dict.fromkeys(p[0] for p in plan):
        if any(m in mc.VISUAL_TEACHER for dd, _, m in plan if dd == d):
            out.append((d, "res50_vanilla.yaml", True))
        out += [(d, mc.file_name(s, m), False) for dd, s, m in plan if dd == d]
    return out


def run_state(folder: Path) -> str:
    log = folder / "worklog.txt"
    if log.is_file() and "best_acc" in log.read_text():
        return "finished"
    return "partial" if (folder / "latest").is_file() else "new"


def commands(args):
    from lavid_plugin.config import load_cfg

    prefix = Path(args.prefix)
    for d, fname, is_teacher in cells(args.table, args.datasets, args.students, args.methods):
        path = ROOT / "configs" / "lavid" / d / fname
        if not path.is_file():
            raise SystemExit(f"missing config {path}: run scripts/make_configs.py")
        cfg = load_cfg(str(path))
        for seed in ([0] if is_teacher else range(args.seeds)):
            name = path.stem if is_teacher else f"{path.stem}_seed{seed}"
            opts = ["EXPERIMENT.SEED", str(seed), "EXPERIMENT.NAME", name, "LOG.PREFIX", str(prefix)]
            if cfg.DISTILLER.TEACHER_CKPT:  # the teacher trained above, under the same prefix
                opts += ["DISTILLER.TEACHER_CKPT", str(prefix / cfg.EXPERIMENT.PROJECT / "res50_vanilla" / "student_best")]
            state = run_state(prefix / cfg.EXPERIMENT.PROJECT / name)
            cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "--cfg", str(path.relative_to(ROOT))]
            cmd += (["--resume"] if state == "partial" else []) + opts
            yield state, cmd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=int, required=True, choices=(1, 3, 4))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", nargs="+", help="Table 1: datasets; Table 3: ImageNet groups")
    p.add_argument("--students", nargs="+", choices=list(mc.STUDENTS))
    p.add_argument("--methods", nargs="+")
    p.add_argument("--prefix", default="./output", help="LOG.PREFIX of every run")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    todo = list(commands(args))
    n_done = sum(s == "finished" for s, _ in todo)
    print(f"Table {args.table}: {len(todo)} runs, {n_done} finished, {len(todo) - n_done} to run", flush=True)
    for state, cmd in todo:
        line = shlex.join(cmd)
        if state == "finished":
            print(f"skip (finished): {line}")
            continue
        print(("would run: " if args.dry_run else "run: ") + line, flush=True)
        if not args.dry_run:
            rc = subprocess.call(cmd, cwd=ROOT)
            if rc != 0:
                print(f"stopped: the run above exited with {rc}; fix it and run this again (finished runs are skipped)")
                return rc
    if not args.dry_run:
        print(f"all runs finished; the table: lavid report {args.prefix} --table {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
