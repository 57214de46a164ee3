"""``lavid status PREFIX --table N | --ablation NAME``: one view of a grid's state.

Per cell (or ablation point): how many of its seeds finished, run (or wait in a queue), failed or are
missing; the failed runs' last error line and log; and the device-hours the grid has spent so far
(from each run's ``epoch_times.tsv``). It reads the same plan ``scripts/reproduce.py`` launches and
what the launchers recorded (``<prefix>/launcher/state.json``); ``--watch`` refreshes it.
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import LavidError


def run_state(job, book) -> str:
    """finished / running / failed / missing of one run of the plan: finished as the plan sees it
    (:func:`lavid_plugin.reproduce.run_state`), else what the launcher recorded."""
    if job.state == "finished":
        return "finished"
    recorded = book.get(job.key).get("state")
    if recorded in ("running", "queued"):
        return "running"
    if recorded in ("failed", "skipped"):
        return "failed"
    return "missing"


def device_hours(run_dir: Path) -> tuple[float, float]:
    """``(GPU-hours, CPU-hours)`` a run spent: its epochs' seconds times its processes."""
    gpu = cpu = 0.0
    path = Path(run_dir) / "epoch_times.tsv"
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 4:
                hours = float(parts[1]) * int(parts[2]) / 3600
                gpu, cpu = (gpu + hours, cpu) if parts[3] == "cuda" else (gpu, cpu + hours)
    return gpu, cpu


def status_text(args) -> str:
    from .launcher import StateBook
    from .reproduce import ablation_commands, commands

    jobs = list(ablation_commands(args) if args.ablation else commands(args))
    book = StateBook(Path(args.prefix))
    cells: dict = {}
    failed, gpu, cpu = [], 0.0, 0.0
    for j in jobs:
        if j.run_dir is None:
            continue
        state = run_state(j, book)
        cells.setdefault(j.label or str(j.run_dir), {"finished": 0, "running": 0, "failed": 0, "missing": 0})[state] += 1
        if state == "failed":
            rec = book.get(j.key)
            failed.append(f"  {j.run_dir}: {rec.get('error') or 'failed'} (log {rec.get('log')})")
        g, c = device_hours(j.run_dir)
        gpu, cpu = gpu + g, cpu + c
    what = f"ablation {args.ablation}" if args.ablation else f"Table {args.table}"
    width = max([len(c) for c in cells] + [4])
    lines = [f"{what} under {args.prefix} ({args.seeds} seed(s) asked per cell):",
             f"{'cell':<{width}}  finished  running  failed  missing"]
    for cell, n in cells.items():
        total = sum(n.values())
        lines.append(f"{cell:<{width}}  {n['finished']:>4}/{total:<3}  {n['running']:>7}  {n['failed']:>6}  "
                     f"{n['missing']:>7}")
    totals = {k: sum(n[k] for n in cells.values()) for k in ("finished", "running", "failed", "missing")}
    lines.append(f"runs: {totals['finished']} finished, {totals['running']} running or queued, {totals['failed']} failed, "
                 f"{totals['missing']} missing; spent {gpu:.2f} GPU-hours and {cpu:.2f} CPU-hours")
    if failed:
        lines += ["failed runs:", *failed]
    return "\n".join(lines)


def run(args) -> int:
    if args.seeds < 1:
        raise LavidError(f"--seeds must be at least 1, got {args.seeds}")
    if not Path(args.prefix).is_dir():
        raise LavidError(f"no such folder: {args.prefix}")
    while True:
        text = status_text(args)
        if not args.watch:
            print(text)
            return 0
        print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + text, flush=True)
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def add_parser(sub) -> None:
    from . import tables
    from .ablations import ABLATIONS

    s = sub.add_parser("status", help="a reproduction grid's state: seeds finished / running / failed / missing per cell")
    s.add_argument("prefix", help="the LOG.PREFIX the grid runs under (reproduce.py --prefix)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", choices=list(tables.TABLES))
    what.add_argument("--ablation", choices=list(ABLATIONS))
    s.add_argument("--seeds", type=int, default=3, help="seeds asked per cell (as given to reproduce.py)")
    s.add_argument("--datasets", nargs="+")
    s.add_argument("--students", nargs="+")
    s.add_argument("--methods", nargs="+")
    s.add_argument("--mllm-layer", default="-12", metavar="best|LAYER",
                   help="--table 1: the --mllm-layer reproduce.py was given (FitNet / CRD rows at Table B's layer)")
    s.add_argument("--base", help="--ablation: the base config reproduce.py was given")
    s.add_argument("--opts", nargs="+", metavar="KEY VALUE", help="--ablation: the --opts reproduce.py was given")
    s.add_argument("--values", nargs="+", metavar="V", help="--ablation: the --values reproduce.py was given")
    s.add_argument("--watch", type=float, nargs="?", const=30.0, default=0.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 30) until Ctrl-C")
    s.set_defaults(func=run)
