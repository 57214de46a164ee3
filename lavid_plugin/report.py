"""``lavid report``: the paper's tables from finished runs' worklogs.

    lavid report output/ --table 1 --out reports/table1

Each run folder (found recursively under the given paths) holds ``worklog.txt`` and the
``config.yaml`` the trainer writes; the config says dataset, student, method and seed. Cells are the
mean ± sample standard deviation over seeds; per column the best mean is **bold** and the second
<u>underlined</u>, as in the paper. Two tables are written: the **final-epoch** accuracy (the
headline) and, labelled as such, the **best-epoch** accuracy: mdistiller keeps the epoch with the
highest *test* accuracy as "best", which selects on the test set and flatters every method.
Waterbirds (Table 4) reports the Average, Best and Worst group accuracies of that epoch.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LavidError
from .utils import atomic_write_text

METHOD_ORDER = ["vanilla", "kd", "rkd", "dkd", "mlkd", "ls", "lavid", "lavid_ls"]
STUDENT_SHORT = {"resnet18": "res18", "mobilenetv2": "mv2", "shufflenetv2": "shuv2", "resnet50": "res50"}
DATASET_ORDER = ["cub", "caltech101", "flowers", "aircraft", "pets", "cars"]
WATERBIRDS_METRICS = [("Average", "test_acc_avg_group"), ("Best", "test_acc_best_group"),
                      ("Worst", "test_acc_worst_group")]


@dataclass
class Run:
    path: Path
    dataset: str
    student: str
    method: str
    seed: int
    epochs: list = field(default_factory=list)  # one dict of worklog values per epoch
    planned_epochs: int = 0
    finished: bool = False

    def metrics(self, which: str) -> dict:
        """The final epoch's values, or those of the epoch with the best test_acc (mdistiller's best)."""
        if which == "final":
            return self.epochs[-1]
        return max(self.epochs, key=lambda e: e.get("test_acc", -1.0))


def method_of(cfg: dict) -> str:
    """Table row of a config: vanilla, kd, rkd, dkd, mlkd, ls (MLKD + LS), lavid, lavid_ls, ..."""
    kind = cfg["DISTILLER"]["TYPE"].upper()
    ls = bool(cfg["EXPERIMENT"].get("LOGIT_STAND", False))
    if kind == "NONE":
        return "vanilla"
    if kind == "LAVID":
        base = cfg.get("LAVID", {}).get("BASE", "NONE").upper()
        if base == "NONE":
            return "lavid"
        return "lavid_ls" if base == "MLKD" and ls else f"lavid_{base.lower()}" + ("_ls" if ls else "")
    if kind == "MLKD" and ls:
        return "ls"
    return kind.lower() + ("_ls" if ls else "")


def parse_worklog(text: str) -> tuple[list[dict], bool]:
    """mdistiller's worklog blocks (``key: value`` lines between dashes) -> per-epoch dicts."""
    epochs, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_]+): (-?[0-9.eE+-]+|nan|inf)$", line.strip())
        if m is None:
            continue
        key, value = m.group(1), float(m.group(2))
        if key == "epoch":
            cur = {"epoch": int(value)}
            epochs.append(cur)
        elif cur is not None:
            cur[key] = value
    return epochs, "best_acc" in text


def load_run(folder: Path) -> Run:
    import yaml

    cfg_path = folder / "config.yaml"
    if not cfg_path.is_file():
        raise LavidError(f"{folder}: no config.yaml (written by the plugin's trainer); cannot tell its table cell")
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
        dataset = cfg["DATASET"]["TYPE"]
        if dataset == "imagenet_group":
            dataset = f"imagenet_{cfg['DATASET']['GROUP']}"
        student = STUDENT_SHORT.get(cfg["DISTILLER"]["STUDENT"], cfg["DISTILLER"]["STUDENT"])
        run = Run(folder, dataset, student, method_of(cfg), int(cfg["EXPERIMENT"]["SEED"]),
                  planned_epochs=int(cfg["SOLVER"]["EPOCHS"]))
    except (KeyError, TypeError, yaml.YAMLError) as e:
        raise LavidError(f"{cfg_path}: not a run config ({type(e).__name__}: {e})") from None
    run.epochs, run.finished = parse_worklog((folder / "worklog.txt").read_text())
    run.finished = run.finished and bool(run.epochs) and run.epochs[-1]["epoch"] >= run.planned_epochs
    return run


def find_runs(paths) -> list[Run]:
    folders = []
    for p in map(Path, paths):
        if not p.exists():
            raise LavidError(f"no such run folder: {p}")
        folders += [w.parent for w in sorted(p.rglob("worklog.txt"))] if p.is_dir() else []
    if not folders:
        raise LavidError(f"no worklog.txt under {', '.join(map(str, paths))}")
    return [load_run(f) for f in dict.fromkeys(folders)]


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


@dataclass
class Table:
    title: str
    columns: list  # (header, dataset, student, metric key)
    rows: list  # method names
    cells: dict  # (method, column index) -> list of values


def build_table(runs: list[Run], table: int, which: str) -> Table:
    if table == 1:
        runs = [r for r in runs if r.dataset in DATASET_ORDER and r.student != "res50"]
        keys = sorted({(r.dataset, r.student) for r in runs},
                      key=lambda k: (DATASET_ORDER.index(k[0]), list(STUDENT_SHORT.values()).index(k[1])
                                     if k[1] in STUDENT_SHORT.values() else 9))
        columns = [(f"{d} {s}", d, s, "test_acc") for d, s in keys]
    elif table == 3:
        runs = [r for r in runs if r.dataset.startswith("imagenet_")]
        columns = [(d[len("imagenet_"):], d, s, "test_acc") for d, s in sorted({(r.dataset, r.student) for r in runs})]
    elif table == 4:
        runs = [r for r in runs if r.dataset == "waterbirds" and r.student != "res50"]
        students = sorted({r.student for r in runs}, key=lambda s: list(STUDENT_SHORT.values()).index(s)
                          if s in STUDENT_SHORT.values() else 9)
        columns = [(f"{s} {label}", "waterbirds", s, key) for s in students for label, key in WATERBIRDS_METRICS]
    else:
        raise LavidError(f"--table must be 1, 3 or 4, got {table}")
    rows = sorted({r.method for r in runs}, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))
    cells: dict = {}
    for r in runs:
        values = r.metrics(which)
        for j, (_, d, s, key) in enumerate(columns):
            if (r.dataset, r.student) == (d, s):
                if key not in values:
                    raise LavidError(f"{r.path / 'worklog.txt'}: no {key} in epoch {values.get('epoch')}")
                cells.setdefault((r.method, j), []).append(values[key])
    label = "final epoch" if which == "final" else "best epoch (selected on the test set, as mdistiller's 'best')"
    return Table(f"Table {table}: top-1 accuracy (%), {label}, mean ± std over seeds", columns, rows, cells)


def rank_marks(table: Table) -> dict:
    marks = {}
    for j in range(len(table.columns)):
        means = sorted({round(mean_std(v)[0], 2) for (m, jj), v in table.cells.items() if jj == j}, reverse=True)
        for (m, jj), v in table.cells.items():
            if jj == j:
                r = round(mean_std(v)[0], 2)
                marks[(m, j)] = "best" if r == means[0] else ("second" if len(means) > 1 and r == means[1] else "")
    return marks


def to_markdown(table: Table) -> str:
    marks = rank_marks(table)
    out = [f"**{table.title}**", "", "| method | " + " | ".join(c[0] for c in table.columns) + " |",
           "|---|" + "---:|" * len(table.columns)]
    for m in table.rows:
        cells = []
        for j in range(len(table.columns)):
            v = table.cells.get((m, j))
            if not v:
                cells.append("–")
                continue
            mean, std = mean_std(v)
            text = f"{mean:.2f} ± {std:.2f}"
            mark = marks.get((m, j))
            cells.append(f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text)
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    seeds = sorted({len(v) for v in table.cells.values()})
    out += ["", f"Seeds per cell: {', '.join(map(str, seeds))}. Bold: best mean in its column; underlined: second."]
    return "\n".join(out) + "\n"


def to_csv_rows(table: Table, which: str) -> list[list]:
    rows = []
    for m in table.rows:
        for j, (header, d, s, key) in enumerate(table.columns):
            v = table.cells.get((m, j))
            if v:
                mean, std = mean_std(v)
                rows.append([which, m, d, s, key, f"{mean:.4f}", f"{std:.4f}", len(v)])
    return rows


def report(paths, table: int, out: str | None = None, allow_unfinished: bool = False) -> str:
    runs = find_runs(paths)
    unfinished = [r for r in runs if not r.finished]
    if unfinished and not allow_unfinished:
        listed = "\n  ".join(f"{r.path} ({len(r.epochs)}/{r.planned_epochs} epochs)" for r in unfinished[:10])
        raise LavidError(f"{len(unfinished)} run(s) have not finished (pass --allow-unfinished to use them):\n  {listed}")
    runs = [r for r in runs if r.epochs]
    md, csv_rows = [], []
    for which in ("final", "best"):
        t = build_table(runs, table, which)
        if not t.cells:
            raise LavidError(f"none of the {len(runs)} run(s) belongs to Table {table}")
        md.append(to_markdown(t))
        csv_rows += to_csv_rows(t, which)
    text = "\n".join(md)
    if out:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch", "method", "dataset", "student", "metric", "mean", "std", "seeds"])
        w.writerows(csv_rows)
        atomic_write_text(Path(out).with_suffix(".md"), text)
        atomic_write_text(Path(out).with_suffix(".csv"), buf.getvalue())
    return text


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="the paper's tables (Markdown + CSV) from finished runs' worklogs")
    r.add_argument("runs", nargs="+", help="run folders, or folders to search for them")
    r.add_argument("--table", type=int, required=True, choices=(1, 3, 4))
    r.add_argument("--out", default=None, help="write OUT.md and OUT.csv (default: print the Markdown only)")
    r.add_argument("--allow-unfinished", action="store_true", help="use runs that stopped before SOLVER.EPOCHS")

    def run(a):
        text = report(a.runs, a.table, a.out, a.allow_unfinished)
        print(text if a.out is None else f"wrote {Path(a.out).with_suffix('.md')} and {Path(a.out).with_suffix('.csv')}")
        return 0

    r.set_defaults(func=run)
