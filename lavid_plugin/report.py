"""``lavid report``: the paper's tables from finished runs' worklogs.

    lavid report output/ --table 1 --out reports/table1

Each run folder (found recursively under the given paths) holds ``worklog.txt`` and the
``config.yaml`` the trainer writes. Its ``EXPERIMENT.TAG``, written by the config generator
(:mod:`lavid_plugin.tables`), names the run's table cell; a run whose tag names no cell of the
table is listed under the table, never dropped in silence. Cells are the
mean ± sample standard deviation over seeds; per column the best mean is **bold** and the second
<u>underlined</u>, as in the paper. Two tables are written: the **final-epoch** accuracy (the
headline) and, labelled as such, the **best-epoch** accuracy: mdistiller keeps the epoch with the
highest *test* accuracy as "best", which selects on the test set and flatters every method.
Waterbirds (Table 4) reports the overall test accuracy (what the authors log as "Average") and the
mean, best and worst of the four group accuracies, each named for what it is.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LavidError
from .tables import MLLM_ROWS, TABLES, TEACHER_TABLE, Cell, Table, cell_from_tag, column_of, method_layer
from .utils import atomic_write_text, flatten

#: ``--select``: which epoch of each run a table reports, and how the table says so
SELECTIONS = {
    "final": "final epoch",
    "best_test_acc": "best epoch (selected on the test set, as mdistiller's 'best')",
    "best_val_loss": "epoch of the lowest validation loss, checked every LOG.EVAL_FREQ epochs (the authors' "
                     "protocol; the validation set is the test set, for Waterbirds split 1)",
    "config": "the epoch each run's own config selects (LOG.SELECT)",
}


@dataclass
class Run:
    path: Path
    cell: Cell | None  # None: its EXPERIMENT.TAG names no cell of lavid_plugin.tables
    tag: str
    seed: int
    epochs: list = field(default_factory=list)  # one dict of worklog values per epoch
    planned_epochs: int = 0
    finished: bool = False
    eval_freq: int = 5  # LOG.EVAL_FREQ: how often best_val_loss looked at the validation loss
    config: dict = field(default_factory=dict, repr=False)  # its config.yaml, flattened (KEY.SUB: value)

    def metrics(self, which: str) -> dict:
        """The values of the epoch ``which`` selects (:data:`SELECTIONS`)."""
        if which == "config":
            which = str(self.config.get("LOG.SELECT", "best_test_acc"))
            which = which if which in SELECTIONS and which != "config" else "best_test_acc"
        if which == "final":
            return self.epochs[-1]
        if which == "best_test_acc":
            return max(self.epochs, key=lambda e: e.get("test_acc", -1.0))
        key = "val_loss" if any("val_loss" in e for e in self.epochs) else "test_loss"
        checked = [e for e in self.epochs if key in e and (e["epoch"] % self.eval_freq == 0 or e is self.epochs[-1])]
        if not checked:
            raise LavidError(f"{self.path / 'worklog.txt'}: no {key} to select an epoch by")
        return min(checked, key=lambda e: (e[key], e["epoch"]))


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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LavidError(f"{path}: cannot read it ({type(e).__name__}); is it damaged? restore it or leave the run "
                         f"out of the folders you report on") from None


def load_run(folder: Path) -> Run:
    import yaml

    cfg_path = folder / "config.yaml"
    if not cfg_path.is_file():
        raise LavidError(f"{folder}: no config.yaml (written by the plugin's trainer); cannot tell its table cell")
    try:
        cfg = yaml.safe_load(_read(cfg_path))
        tag = str(cfg["EXPERIMENT"]["TAG"])
        run = Run(folder, cell_from_tag(tag), tag, int(cfg["EXPERIMENT"]["SEED"]),
                  planned_epochs=int(cfg["SOLVER"]["EPOCHS"]), eval_freq=int(cfg["LOG"].get("EVAL_FREQ", 5)),
                  config=flatten(cfg))
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as e:
        raise LavidError(f"{cfg_path}: not a run config, or cut short ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    run.epochs, run.finished = parse_worklog(_read(folder / "worklog.txt"))
    run.finished = run.finished and bool(run.epochs) and run.epochs[-1]["epoch"] >= run.planned_epochs
    return run


def find_runs(paths) -> list[Run]:
    """The runs under ``paths``; folders moved aside by ``tools/train.py --overwrite`` are not runs."""
    from .engine.launch import MOVED_ASIDE

    folders = []
    for p in map(Path, paths):
        if not p.exists():
            raise LavidError(f"no such run folder: {p}")
        folders += [w.parent for w in sorted(p.rglob("worklog.txt")) if MOVED_ASIDE not in str(w.parent)] \
            if p.is_dir() else []
    if not folders:
        raise LavidError(f"no worklog.txt under {', '.join(map(str, paths))}")
    return [load_run(f) for f in dict.fromkeys(folders)]


def refuse_repeated_seeds(groups: dict) -> None:
    """``groups``: identity -> runs. Two runs of one identity with the same ``EXPERIMENT.SEED`` (a copied
    folder, a run started twice under two names) would be counted as two seeds: name both."""
    for ident, runs in groups.items():
        seen: dict = {}
        for r in runs:
            if r.seed in seen:
                raise LavidError(f"two runs of {ident} have EXPERIMENT.SEED {r.seed}: {seen[r.seed].path} and {r.path}; "
                                 f"a seed counts once: remove or move the copy out of the folders you report on")
            seen[r.seed] = r


#: config keys that tell nothing about what a run computes (where it lies, how it is logged, who launched it)
_NOT_IDENTITY = ("EXPERIMENT.NAME", "EXPERIMENT.SEED", "EXPERIMENT.TAG", "LOG.PREFIX", "LOG.TENSORBOARD_FREQ",
                 "LOG.SAVE_CHECKPOINT_FREQ", "LOG.WANDB", "DATASET.ROOT", "DATASET.NUM_WORKERS",
                 "DATASET.TEST.BATCH_SIZE", "DATASET.PERSISTENT_WORKERS")


def base_of(run: Run, varied: set) -> tuple:
    """What a run of an ablation shares with its sibling points: its config without the varied keys."""
    return tuple(sorted((k, repr(v)) for k, v in run.config.items() if k not in _NOT_IDENTITY and k not in varied))


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


@dataclass
class Grid:
    title: str
    columns: list  # (header, dataset folder, student, metric key)
    rows: list  # method names
    cells: dict  # (method, column index) -> list of values


def grid_columns(table: Table, runs: list[Run]) -> list[tuple]:
    """The table's (column, student, metric) triples that some run fills, in the table's order."""
    present = {(r.cell.folder, r.cell.student) for r in runs}
    out = []
    for folder in table.folders:
        for s in table.students:
            if (folder, s) not in present:
                continue
            for label, key in table.metrics:
                dataset, group = column_of(folder)
                parts = ([group or dataset] if len(table.columns) > 1 else []) + \
                        ([s] if len(table.students) > 1 else []) + ([label] if len(table.metrics) > 1 else [])
                out.append((" ".join(parts), folder, s, key))
    return out


def selection_label(which: str, runs: list[Run]) -> str:
    """How a table says which epoch it reports; ``config`` names the runs' own LOG.SELECT."""
    if which != "config":
        return SELECTIONS[which]
    chosen = sorted({str(r.config.get("LOG.SELECT", "best_test_acc")) for r in runs})
    return "; ".join(f"LOG.SELECT {c}: {SELECTIONS.get(c, c)}" for c in chosen)


def build_grid(runs: list[Run], table: Table, which: str) -> Grid:
    """``runs``: the table's own (their cells name it). Rows keep the table's method order."""
    columns = grid_columns(table, runs)
    rows = [m for m in table.methods if any(r.cell.method == m for r in runs)]
    cells: dict = {}
    for r in runs:
        values = r.metrics(which)
        for j, (_, folder, s, key) in enumerate(columns):
            if (r.cell.folder, r.cell.student) == (folder, s):
                if key not in values:
                    raise LavidError(f"{r.path / 'worklog.txt'}: no {key} in epoch {values.get('epoch')}")
                cells.setdefault((r.cell.method, j), []).append(values[key])
    label = selection_label(which, runs)
    return Grid(f"Table {table.key}: top-1 accuracy (%), {label}, mean ± std over seeds", columns, rows, cells)


def sort_runs(runs: list[Run], table: Table) -> tuple[list[Run], list[Run], list[Run]]:
    """``(the table's runs, runs of other tables, runs whose cell no table knows)``."""
    mine, other, unknown = [], [], []
    from .ablations import ABLATIONS, TAG_PREFIX

    known_tags = {t.tag for t in TABLES.values()} | {TEACHER_TABLE} | {TAG_PREFIX + k for k in ABLATIONS}
    for r in runs:
        c = r.cell
        if c is None or c.table not in known_tags:
            unknown.append(r)
        elif table.owns(c):
            mine.append(r)
        elif c.table != table.tag:
            other.append(r)
        else:
            unknown.append(r)
    return mine, other, unknown


def rank_marks(table: Grid) -> dict:
    marks = {}
    for j in range(len(table.columns)):
        means = sorted({round(mean_std(v)[0], 2) for (m, jj), v in table.cells.items() if jj == j}, reverse=True)
        for (m, jj), v in table.cells.items():
            if jj == j:
                r = round(mean_std(v)[0], 2)
                marks[(m, j)] = "best" if r == means[0] else ("second" if len(means) > 1 and r == means[1] else "")
    return marks


def to_markdown(table: Grid, seeds: int | None = None) -> str:
    """``seeds``: how many seeds each cell was asked for (default: the most any cell has); a cell with
    fewer says so (``n=2/3``) instead of passing for a full one."""
    marks = rank_marks(table)
    asked = seeds or max((len(v) for v in table.cells.values()), default=0)
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
            text = f"**{text}**" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text
            cells.append(text + (f" (n={len(v)}/{asked})" if len(v) < asked else ""))
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    counts = sorted({len(v) for v in table.cells.values()})
    short = " Cells marked n=k/N have k of the N seeds asked (the grid is not finished)." if counts[0] < asked else ""
    out += ["", f"Seeds per cell: {', '.join(map(str, counts))}. Bold: best mean in its column; underlined: second."
            + short]
    return "\n".join(out) + "\n"


def to_csv_rows(table: Grid, which: str) -> list[list]:
    rows = []
    for m in table.rows:
        for j, (header, d, s, key) in enumerate(table.columns):
            v = table.cells.get((m, j))
            if v:
                mean, std = mean_std(v)
                rows.append([which, m, d, s, key, f"{mean:.4f}", f"{std:.4f}", len(v)])
    return rows


def refuse_unfinished(runs: list[Run], allow: bool) -> None:
    """Runs that stopped before SOLVER.EPOCHS are an error listing them, unless ``allow``."""
    unfinished = [r for r in runs if not r.finished]
    if unfinished and not allow:
        listed = "\n  ".join(f"{r.path} ({len(r.epochs)}/{r.planned_epochs} epochs)" for r in unfinished[:10])
        raise LavidError(f"{len(unfinished)} run(s) have not finished (pass --allow-unfinished to use them):\n  {listed}")


BEST_LAYERS = "best_layers.json"


def runs_per_cell(runs: list[Run], allow_unfinished: bool) -> dict:
    """``runs`` by cell (``EXPERIMENT.TAG``), after refusing a seed counted twice and, unless allowed, an
    unfinished run."""
    cells: dict = {}
    for r in runs:
        cells.setdefault(r.tag, []).append(r)
    refuse_repeated_seeds(cells)
    refuse_unfinished(runs, allow_unfinished)
    return cells


def best_layers(paths, out: str | Path | None = None, allow_unfinished: bool = False) -> tuple[dict, str]:
    """Per dataset x student x method (FitNet, CRD), the Table B layer with the best mean top-1 over seeds (at the
    epoch each run's config selects), as Appendix B tunes the baselines; written to ``out`` (JSON) for
    ``reproduce.py --table 1 --mllm-layer best`` and ``lavid report --table 1 --mllm-layer best``."""
    mine, _, _ = sort_runs(find_runs(paths), TABLES["B"])
    means: dict = {}
    for runs in runs_per_cell(mine, allow_unfinished).values():
        runs = [r for r in runs if r.epochs]
        if not runs:
            continue
        c = runs[0].cell
        kind, layer = method_layer(c.method)
        values = [r.metrics("config")["test_acc"] for r in runs]
        means.setdefault(c.folder, {}).setdefault(c.student, {}).setdefault(kind, {})[layer] = \
            (mean_std(values)[0], len(values))
    if not means:
        raise LavidError(f"no finished Table B run under {', '.join(map(str, paths))}: run "
                         f"scripts/reproduce.py --table B first")
    layers = {f: {s: {k: max(by_layer, key=lambda L: (by_layer[L][0], L)) for k, by_layer in kinds.items()}
                  for s, kinds in students.items()} for f, students in means.items()}
    doc = {"source": "lavid report --table B --best-layer", "selection": selection_label("config", mine),
           "metric": "test_acc", "layers": layers,
           "means": {f: {s: {k: {str(L): round(m, 4) for L, (m, _) in sorted(v.items())} for k, v in kinds.items()}
                         for s, kinds in st.items()} for f, st in means.items()}}
    lines = ["| dataset | student | method | best layer | mean top-1 | layers (mean) |", "|---|---|---|---:|---:|---|"]
    for f, students in means.items():
        for s, kinds in students.items():
            for k, v in kinds.items():
                L = layers[f][s][k]
                lines.append(f"| {f} | {s} | {k} | {L} | {v[L][0]:.2f} | "
                             + ", ".join(f"{x}: {m:.2f} (n={n})" for x, (m, n) in sorted(v.items())) + " |")
    text = "**Table B: the best LLaVA layer per dataset, student and method** (" + doc["selection"] + ")\n\n" + \
        "\n".join(lines) + "\n"
    if out:
        import json

        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    return doc, text


def read_best_layers(path: str | Path) -> dict:
    """``layers`` of a :func:`best_layers` file: folder -> student -> kind -> layer."""
    import json

    path = Path(path)
    if not path.is_file():
        raise LavidError(f"{path}: no best-layer file; run Table B, then lavid report {path.parent} --table B "
                         f"--best-layer (it writes {path.name})")
    try:
        return json.loads(path.read_text())["layers"]
    except (ValueError, KeyError, TypeError) as e:
        raise LavidError(f"{path}: not a best-layer file ({type(e).__name__})") from None


def borrow_best_layers(runs: list[Run], layers: dict) -> tuple[list[Run], list[str]]:
    """Table 1's FitNet / CRD rows from the Table B runs at each column's best layer (in place of its -12 runs)."""
    import dataclasses

    out, used = [], []
    for r in runs:
        c = r.cell
        if c is not None and c.table == "table1" and c.method in MLLM_ROWS.values():
            continue  # the row is filled at the best layer instead
        if c is not None and c.table == "tableB":
            kind, layer = method_layer(c.method)
            if layers.get(c.folder, {}).get(c.student, {}).get(kind) == layer:
                cell = dataclasses.replace(c, table="table1", method=MLLM_ROWS[kind])
                out.append(dataclasses.replace(r, cell=cell, tag=cell.tag))
                used.append(f"{c.folder} {c.student} {kind} {layer}")
                continue
        out.append(r)
    return out, sorted(set(used))


def report(paths, table: str, out: str | None = None, allow_unfinished: bool = False,
           select=("final", "config"), seeds: int | None = None, mllm_layer: str | None = None) -> str:
    key = str(table)
    if key not in TABLES:
        raise LavidError(f"--table must be one of {list(TABLES)}, got {table!r}")
    spec = TABLES[key]
    runs, note = find_runs(paths), ""
    if mllm_layer == "best":
        if key != "1":
            raise LavidError("--mllm-layer best fills Table 1's FitNet / CRD rows; give --table 1")
        runs, used = borrow_best_layers(runs, read_best_layers(Path(paths[0]) / BEST_LAYERS))
        note = ("FitNet / CRD rows: Table B's runs at each column's best layer (" + "; ".join(used) + ")\n"
                if used else "FitNet / CRD rows: no Table B run at a best layer yet\n")
    mine, other, unknown = sort_runs(runs, spec)
    runs_per_cell(mine, allow_unfinished)
    mine = [r for r in mine if r.epochs]
    if not mine:
        raise LavidError(f"none of the {len(mine) + len(other) + len(unknown)} run(s) belongs to Table {key}"
                         + (f"; not in any table: {', '.join(str(r.path) for r in unknown[:5])}" if unknown else ""))
    md, csv_rows = [], []
    for which in select:
        t = build_grid(mine, spec, which)
        md.append(to_markdown(t, seeds))
        csv_rows += to_csv_rows(t, which)
    md.append(note + skipped_note(other, unknown))
    text = "\n".join(md)
    if out:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["epoch", "method", "dataset", "student", "metric", "mean", "std", "seeds"])
        w.writerows(csv_rows)
        atomic_write_text(Path(out).with_suffix(".md"), text)
        atomic_write_text(Path(out).with_suffix(".csv"), buf.getvalue())
    return text


def report_ablation(paths, name: str, out: str | None = None, allow_unfinished: bool = False, which: str = "final",
                    size: tuple[int, int] = (640, 400)) -> str:
    """An ablation's table (value, seeds, mean ± std; Markdown and CSV) and its plot (OUT.png)."""
    from . import ablations
    from .plots import ablation_png

    ab = ablations.get(name)
    runs = [r for r in find_runs(paths) if (ablations.point_of(r.tag) or ("",))[0] == name]
    varied = {k for v in ab.values for k in ab.overrides(v, "x")[::2]}
    bases: dict = {}
    for r in runs:
        bases.setdefault(base_of(r, varied), []).append(r)
    if len(bases) > 1:
        groups = list(bases.values())
        as_dicts = [dict(b) for b in bases]
        differ = sorted(k for k in set().union(*as_dicts) if len({d.get(k) for d in as_dicts}) > 1)
        listed = "\n  ".join(f"{g[0].path} (and {len(g) - 1} more)" if len(g) > 1 else str(g[0].path) for g in groups)
        raise LavidError(f"the runs of ablation {name} come from {len(bases)} different base configs (differing in "
                         f"{differ[:8]}); one table would average them under one value. Report each base's folder "
                         f"on its own:\n  {listed}")
    points: dict = {}
    for r in runs:
        points.setdefault(f"ablation {name} = {ablations.point_of(r.tag)[1]}", []).append(r)
    refuse_repeated_seeds(points)
    refuse_unfinished(runs, allow_unfinished)
    values: dict = {}
    for r in runs:
        if r.epochs:
            values.setdefault(ablations.point_of(r.tag)[1], []).append(r.metrics(which)["test_acc"])
    if not values:
        raise LavidError(f"no run of ablation {name!r} under {', '.join(map(str, paths))} (their EXPERIMENT.TAG is "
                         f"{ab.tag('<value>')!r}; scripts/reproduce.py --ablation {name} sets it)")
    order = [str(v) for v in ab.values if str(v) in values] + sorted(set(values) - {str(v) for v in ab.values})
    stats = [mean_std(values[v]) for v in order]
    lines = [f"**Ablation {name}: {ab.title}; top-1 accuracy (%), {SELECTIONS[which]}, mean ± std over seeds**", "",
             f"| {ab.axis} | seeds | top-1 |", "|---|---:|---:|"]
    lines += [f"| {v} | {len(values[v])} | {m:.2f} ± {s:.2f} |" for v, (m, s) in zip(order, stats)]
    text = "\n".join(lines) + "\n"
    if out:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([ab.axis, "seeds", "mean", "std", "epoch"])
        w.writerows([v, len(values[v]), f"{m:.4f}", f"{s:.4f}", which] for v, (m, s) in zip(order, stats))
        atomic_write_text(Path(out).with_suffix(".md"), text)
        atomic_write_text(Path(out).with_suffix(".csv"), buf.getvalue())
        kind = ab.plot if all(_is_number(v) for v in order) else "bar"
        where = sorted({ablations.point_of(r.tag)[2:] for r in runs})
        ablation_png(Path(out).with_suffix(".png"), f"{ab.title}: " + "; ".join(f"{d}, {s}" for d, s in where), ab.axis, order,
                     [m for m, _ in stats], [s for _, s in stats], kind, size)
    return text


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def skipped_note(other: list[Run], unknown: list[Run]) -> str:
    """What the table leaves out, said: counts of other tables' runs, and each run no table knows."""
    lines = []
    if other:
        counts: dict = {}
        for r in other:
            counts[r.cell.table] = counts.get(r.cell.table, 0) + 1
        lines.append("Not in this table: " + ", ".join(f"{n} run(s) of {t}" for t, n in sorted(counts.items())) + ".")
    for r in unknown:
        lines.append(f"Not in any table (EXPERIMENT.TAG {r.tag!r}): {r.path}")
    return "\n".join(lines) + ("\n" if lines else "")


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="the paper's tables (Markdown + CSV) from finished runs' worklogs")
    r.add_argument("runs", nargs="+", help="run folders, or folders to search for them")
    from .ablations import ABLATIONS

    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", choices=list(TABLES))
    what.add_argument("--ablation", choices=list(ABLATIONS), help="an ablation's table and plot (OUT.png)")
    r.add_argument("--png-size", type=int, nargs=2, default=[640, 400], metavar=("W", "H"),
                   help="the ablation plot's size in pixels")
    r.add_argument("--out", default=None, help="write OUT.md and OUT.csv (default: print the Markdown only)")
    r.add_argument("--allow-unfinished", action="store_true", help="use runs that stopped before SOLVER.EPOCHS")
    r.add_argument("--seeds", type=int, default=None,
                   help="seeds asked per cell: a cell with fewer finished runs is marked n=k/N (default: the most any cell has)")
    r.add_argument("--best-layer", action="store_true", help=f"--table B: the best LLaVA layer per dataset, student "
                   f"and method; writes RUNS/{BEST_LAYERS} (for --table 1 --mllm-layer best, here and in reproduce.py)")
    r.add_argument("--mllm-layer", choices=["best"], help=f"--table 1: FitNet / CRD rows from Table B's runs at the "
                   f"best layer of each column (RUNS/{BEST_LAYERS}) instead of layer -12")
    r.add_argument("--select", nargs="+", choices=list(SELECTIONS), default=["final", "config"],
                   help="which epoch of each run, one table each (default: final, then the epoch each run's config selects)")

    def run(a):
        from .utils import check_output_path

        if a.out:
            check_output_path(Path(a.out).with_suffix(".md"), "--out")
        if min(a.png_size) < 32 or max(a.png_size) > 10000:
            raise LavidError(f"--png-size {a.png_size[0]} {a.png_size[1]}: give a width and height between 32 and "
                             f"10000 pixels")
        if a.best_layer:
            if a.table != "B":
                raise LavidError("--best-layer reads Table B's runs; give --table B")
            target = Path(a.runs[0]) / BEST_LAYERS
            check_output_path(target, "--best-layer")
            _, text = best_layers(a.runs, target, a.allow_unfinished)
            print(text + f"\nwrote {target}")
            return 0
        if a.ablation:
            text = report_ablation(a.runs, a.ablation, a.out, a.allow_unfinished, a.select[0], tuple(a.png_size))
            done = f"wrote {Path(a.out).with_suffix('.md')}, .csv and .png" if a.out else text
        else:
            text = report(a.runs, a.table, a.out, a.allow_unfinished, a.select, a.seeds, a.mllm_layer)
            done = f"wrote {Path(a.out).with_suffix('.md')} and {Path(a.out).with_suffix('.csv')}" if a.out else text
        print(done)
        return 0

    r.set_defaults(func=run)
