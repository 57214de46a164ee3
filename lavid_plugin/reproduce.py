"""Launch (or print) every run of one of the paper's tables, skipping finished runs.

    python scripts/reproduce.py --table 1 --seeds 3 [--datasets cub flowers] [--students res18]
                                [--methods vanilla lavid] [--prefix ./output] [--dry-run]

The table's cells come from :mod:`lavid_plugin.tables`. Runs ``tools/train.py`` once per (config,
seed), one after another, with ``EXPERIMENT.SEED k`` and ``EXPERIMENT.NAME <config>_seed<k>``,
under ``--prefix``. The ResNet-50 teacher of a dataset (``res50_vanilla.yaml``, seed 0) runs first
when a row needs it. A run whose worklog reaches the config's last epoch is skipped; one that stopped
half-way is resumed (``--resume``). A teacher file a run reads is written first when it is missing: a
signature or MaKD bank from the authors' release (``--teacher released``, the default; ``lavid signature|teacher
released``) or extracted here (``--teacher extract``, and what they did not release), a LLaVA feature bank
(``lavid teacher features``), a class-name embedding (Table 5). Afterwards: ``lavid report <prefix> --table N``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import tables
from .errors import LavidError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    """One node of a reproduction's plan: a teacher file to write (Stage 1 / 1b) or a training run,
    with the jobs it waits for. ``state``: ``finished`` / ``partial`` / ``new`` for a run, ``stage1b``
    for a file to write, ``blocked`` for a file that needs the user's LLM first."""
    state: str
    cmd: list
    key: str  # unique: a run's folder, or the file a Stage 1 / 1b job writes
    deps: list = field(default_factory=list)
    run_dir: Path | None = None
    label: str = ""  # the table cell or ablation point (lavid status groups seeds by it)
    note: str = ""  # a teacher file: where it comes from (released, extracted, and why); blocked: what it waits for

    @property
    def kind(self) -> str:
        return "run" if self.run_dir is not None else "file"


def plan(table: str, datasets=None, students=None, methods=None) -> list[tuple[tables.Cell, bool]]:
    """``(cell, is_teacher)`` of every run of the table, each column's visual teacher first."""
    if table not in tables.TABLES:
        raise LavidError(f"--table must be one of {list(tables.TABLES)}, got {table!r}")
    spec = tables.TABLES[table]
    # Table 3's columns may be named by their group alone ("bird" for "imagenet_bird")
    folders = [f"imagenet_{d}" if f"imagenet_{d}" in spec.folders else d for d in datasets or ()]
    cells = spec.cells(folders or None, students, methods)
    out = []
    for folder in dict.fromkeys(c.folder for c in cells):
        mine = [c for c in cells if c.folder == folder]
        teacher = next((c.teacher() for c in mine if c.needs_visual_teacher), None)
        out += ([(teacher, True)] if teacher else []) + [(c, False) for c in mine]
    return out


def run_state(folder: Path, epochs: int) -> str:
    """``finished`` when the worklog's last epoch reaches ``epochs`` (a run's SOLVER.EPOCHS), ``partial``
    when a checkpoint exists, else ``new``."""
    from .report import parse_worklog

    log = folder / "worklog.txt"
    done, _ = parse_worklog(log.read_text()) if log.is_file() else ([], False)
    if done and done[-1]["epoch"] >= epochs:
        return "finished"
    return "partial" if (folder / "latest").is_file() else "new"


#: the answering LLMs of the paper (Fig. 5) by their released names -> the Hugging Face model to extract with
LLM_MODELS = {"qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
              "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct", "llama_3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
              "llama3.1-8b": "meta-llama/Llama-3.1-8B-Instruct", "llama3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
              "gemma3-12b": "google/gemma-3-12b-it", "gemma3-27b": "google/gemma-3-27b-it",
              "mistral0.3-7b": "mistralai/Mistral-7B-Instruct-v0.3"}
#: a signature file's stem: <answering LLM>_<question set> (the authors' file names)
_SIGNATURE_STEM = re.compile(r"^(?P<llm>.+?)_(?P<questions>(?:chat|gemini|chato3)(?:_|$).*)$")
_LAVID = [sys.executable, "-m", "lavid_plugin.cli"]


def _rel(path) -> str:
    return str(path).removeprefix("./")


def signature_jobs(sig: str, source: str, shards: int = 1) -> list[Job]:
    """The Stage 1 jobs that write the signature ``sig`` (``./signatures/<dataset>/<llm>_<questions>.safetensors``)
    when it is missing: the authors' released answers (``source`` ``released``, where they released them), else
    extracted with the LLM from their released questions; blocked when neither the answers nor the questions exist."""
    from . import authors_release as rel

    sig = _rel(sig)
    path = Path(sig)
    name = _SIGNATURE_STEM.match(path.stem)
    if (ROOT / sig).is_file() or name is None or path.parts[0] != "signatures":
        return []
    llm, questions = name["llm"], name["questions"]
    try:
        ds = rel.dataset("/".join(path.parts[1:-1]))
    except LavidError:  # not one of the paper's datasets: the user's own signature, written by the user
        return []
    try:
        answers, qfile = rel.signature_paths(ds, llm, questions)
    except LavidError:
        answers, qfile = None, rel.question_path(ds, questions)
    commit = rel.manifest()["commit"][:7]
    if source == "released" and answers:
        cmd = _LAVID + ["signature", "released", ds.folder, "--llm", llm, "--questions", questions, "-o", sig]
        return [Job("stage1b", cmd, key=sig, note=f"the authors' released answers ({answers} at {commit})")]
    why = "--teacher extract" if answers else f"the authors released no {llm}_{questions} answers for {ds.folder}"
    model = LLM_MODELS.get(llm.lower())
    folder = path.parent
    qlocal, classes = str(folder / f"{questions}.txt"), str(folder / "classes.json")
    extract = _LAVID + ["signature", "extract", "--model", model or "YOUR_LLM", "--questions", qlocal,
                        "--classes", classes, "-o", sig]
    if qfile is None:
        return [Job("blocked", extract, key=sig, note=f"{questions}.txt from your LLM (lavid signature questions; "
                                                      f"the authors released neither it nor these answers for "
                                                      f"{ds.folder}), then")]
    jobs = []
    if not (ROOT / qlocal).is_file() or not (ROOT / classes).is_file():
        inputs = _LAVID + ["signature", "released", ds.folder, "--questions", questions, "--inputs-to", str(folder)]
        jobs.append(Job("stage1b", inputs, key=qlocal, note=f"the authors' released questions ({qfile} at {commit})"))
    if model is None:
        return jobs + [Job("blocked", extract, key=sig, deps=[j.key for j in jobs],
                           note=f"your {llm} model in place of YOUR_LLM ({why})")]
    note = f"extracted with {model} ({why})"
    if shards <= 1:
        return jobs + [Job("stage1b", extract, key=sig, deps=[j.key for j in jobs], note=note)]
    # N extraction jobs (one SLURM array under --launcher slurm), then one that joins them
    parts = [str(path.with_name(f"{path.stem}.shard{i}of{shards}{path.suffix}")) for i in range(shards)]
    jobs += [Job("stage1b", extract[:-1] + [part, "--shard", f"{i}/{shards}"], key=part, deps=[j.key for j in jobs],
                 note=f"shard {i + 1} of {shards}, {note}") for i, part in enumerate(parts)]
    return jobs + [Job("stage1b", _LAVID + ["signature", "merge", *parts, "-o", sig], key=sig, deps=parts,
                       note=f"{shards} shards joined, {note}")]


def teacher_jobs(cell: tables.Cell, path: Path, teacher: str = "released", makd_bank: str | None = None,
                 shards: int = 1) -> list[Job]:
    """The jobs that write what ``cell`` reads when it is missing (a signature, a per-image bank), in order: each
    waits for the one before; the cell's runs wait for the last. ``teacher`` (``released`` / ``extract``): where
    signatures and MaKD banks come from; ``makd_bank`` overrides it for MaKD's bank."""
    from . import authors_release as rel
    from .image_teacher.vlm import NATIVE_ASPECT_MODEL, PAPER_FEATURE_MODEL

    lavid = _LAVID + ["teacher"]
    cfg = ["--cfg", str(path.relative_to(ROOT))]
    if cell.method in tables.SIGNATURE_FILES:  # Table 5: a class-name embedding, from the class names alone
        return embedding_jobs(cell.method, cell.config()["LAVID"]["SIGNATURE"], cfg, teacher)
    if tables.reads_signature(cell.method):
        return signature_jobs(cell.config()["LAVID"]["SIGNATURE"], teacher, shards)
    bank = cell.bank_path
    if not bank or (ROOT / bank).is_file():
        return []
    if tables.READS_BANK[cell.method][1] == "features":
        return [Job("stage1b", lavid + ["features", *cfg, "--model", PAPER_FEATURE_MODEL, "--layers",
                                        *map(str, tables.TABLE_B_LAYERS), "-o", bank], key=bank)]
    source, commit = makd_bank or teacher, rel.manifest()["commit"][:7]
    try:
        released = rel.bank_path(rel.dataset(cell.folder))
    except LavidError:
        released = None
    if source == "released" and released:
        return [Job("stage1b", lavid + ["released", cell.folder, *cfg, "-o", bank], key=bank,
                    note=f"the authors' released InternVL2 bank ({released} at {commit})")]
    why = "--makd-bank extract" if source == "extract" else f"the authors released no bank for {cell.folder}"
    questions = str(Path(bank).parent / tables.ASPECT_QUESTIONS)
    jobs = []
    if not (ROOT / questions).is_file():
        jobs.append(Job("blocked", lavid + ["aspect-questions", *cfg, "--model", "YOUR_LLM", "-o", questions],
                        key=questions, note="MaKD's aspect questions with your LLM"))
    # --chat: InternVL is a chat model, asked through its processor's chat template (not LLaVA's USER:/ASSISTANT:)
    return jobs + [Job("stage1b", lavid + ["aspects", *cfg, "--model", NATIVE_ASPECT_MODEL, "--chat", "--questions",
                                           questions, "-o", bank], key=bank, deps=[j.key for j in jobs],
                       note=f"extracted with {NATIVE_ASPECT_MODEL} ({why})")]


def train_command(config: Path, run_dir: Path, epochs: int, opts: list) -> tuple[str, list]:
    """``(state, command)`` of one run: ``tools/train.py`` on ``config``, with ``--resume`` when it stopped
    half-way (:func:`run_state`)."""
    state = run_state(run_dir, epochs)
    rel = str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config)
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "--cfg", rel]
    return state, cmd + (["--resume"] if state == "partial" else []) + opts


def embedding_jobs(method: str, sig: str, cfg_args: list, source: str) -> list[Job]:
    """Table 5's class-name embedding ``sig`` when it is missing: the authors' released vectors (``minilm_384.json``,
    ``bert_768.json``) with ``source`` ``released`` where they released them, else computed here."""
    from . import authors_release as rel

    if (ROOT / sig).is_file():
        return []
    path = Path(_rel(sig))
    if source == "released":
        try:
            ds = rel.dataset("/".join(path.parts[1:-1]))
        except LavidError:  # not one of the paper's datasets
            ds = None
        released = ds and rel.lookup(ds.answers_dir, f"{path.stem}.json")
        if released:
            cmd = _LAVID + ["signature", "released", ds.folder, "--file", path.stem, "-o", sig]
            return [Job("stage1b", cmd, key=sig, note=f"the authors' released vectors ({released} at "
                                                     f"{rel.manifest()['commit'][:7]})")]
    return [Job("stage1b", embed_command(method, cfg_args, sig), key=sig,
                note=f"computed here with lavid signature embed ({method[len('emb_'):]})")]


def embed_command(method: str, cfg_args: list, out: str) -> list:
    model = method[len("emb_"):]
    return [sys.executable, "-m", "lavid_plugin.cli", "signature", "embed", "--model", model, *cfg_args, "-o", out]


#: keys the launcher sets per run: an --opts value for them would give every run the same one
LAUNCHER_KEYS = ("EXPERIMENT.NAME", "EXPERIMENT.SEED", "EXPERIMENT.TAG", "LOG.PREFIX")


def check_opts(opts, ab, name: str) -> None:
    """Refuse ``--opts`` that set what the launcher varies: the ablated key (every point would train at
    the same value while tagged with its own) or a run's name, seed, tag or prefix."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise LavidError(f"--opts must be KEY VALUE pairs, got an odd list: {opts}")
    varied = {k for v in ab.values for k in ab.overrides(v, "x")[::2]}
    bad = [k for k in opts[::2] if k in varied or k in LAUNCHER_KEYS]
    if bad:
        raise LavidError(f"--opts {bad}: the launcher sets {'it' if len(bad) == 1 else 'them'} per run "
                         f"(--ablation {name} varies {sorted(varied)}; every run gets its own "
                         f"{', '.join(LAUNCHER_KEYS)}); use --base, --prefix or --seeds instead")


def ablation_commands(args):
    """Per point of ``--ablation``: what it reads, if missing (a pruned or embedding signature), then its runs."""
    from . import ablations
    from .config import load_cfg

    ab = ablations.get(args.ablation, ROOT)
    path = Path(args.base).resolve() if args.base else ROOT / "configs" / "lavid" / ablations.BASE.path
    if not path.is_file():
        raise LavidError(f"--base {path}: no such config")
    check_opts(args.opts, ab, args.ablation)
    cfg = load_cfg(str(path), args.opts)
    if cfg.DISTILLER.TYPE != "LAVID":
        raise LavidError(f"--base {path}: an ablation varies a LaViD run; its DISTILLER.TYPE is {cfg.DISTILLER.TYPE}")
    folder = tables.folder_of(cfg.DATASET.TYPE, cfg.DATASET.GROUP)
    student = next((k for k, v in tables.STUDENTS.items() if v == cfg.DISTILLER.STUDENT), cfg.DISTILLER.STUDENT)
    prefix = Path(args.prefix)
    values = ab.values
    if getattr(args, "values", None):
        unknown = [v for v in args.values if v not in [str(x) for x in ab.values]]
        if unknown:
            raise LavidError(f"--values {unknown}: not points of --ablation {args.ablation} ({list(ab.values)})")
        values = [x for x in ab.values if str(x) in args.values]
    written = set()
    for value in values:
        over = ab.overrides(value, folder)
        steps = ablation_teacher_jobs(ab, value, cfg, path, folder, getattr(args, "teacher", "released"),
                                      getattr(args, "extract_shards", 1))
        yield from first_time(steps, written)
        deps = [steps[-1].key] if steps else []
        for seed in range(args.seeds):
            name = ab.name(value, seed, student)
            opts = over + ["EXPERIMENT.SEED", str(seed), "EXPERIMENT.NAME", name, "EXPERIMENT.TAG",
                           ab.tag(value, folder, student), "LOG.PREFIX", str(prefix), *(args.opts or [])]
            run_dir = prefix / cfg.EXPERIMENT.PROJECT / name
            state, cmd = train_command(path, run_dir, cfg.SOLVER.EPOCHS, opts)
            yield Job(state, cmd, key=str(run_dir), deps=list(deps), run_dir=run_dir,
                      label=ab.tag(value, folder, student))


def first_time(steps: list[Job], written: set):
    """The teacher-file jobs of ``steps`` not planned yet: each file once, before the first run that reads it."""
    for step in steps:
        if step.key not in written:
            written.add(step.key)
            yield step


def ablation_teacher_jobs(ab, value, cfg, path: Path, folder: str, teacher: str, shards: int = 1) -> list[Job]:
    """What one ablation point reads, when missing: its signature (released or extracted, as Table 1's), a
    pruned one (after the signature it prunes), or a class-name embedding."""
    over = ab.overrides(value, folder)
    base = signature_jobs(cfg.LAVID.SIGNATURE, teacher, shards)
    step = ab.prepare(value, ROOT, folder)
    if step:
        cmd = _LAVID + step[1:]
        return base + [Job("stage1b", cmd, key=cmd[-1], deps=[j.key for j in base[-1:]])]
    if ab.key == "embedding" and value != "mcq":
        return embedding_jobs(f"emb_{value}", over[1], ["--cfg", str(path)], teacher)
    return signature_jobs(over[1], teacher, shards) if over[0] == "LAVID.SIGNATURE" else base


def mllm_layers(args):
    """``--mllm-layer``: a function that moves Table 1's FitNet / CRD cells to Table B's cell at the chosen layer
    (``best``: each column's best, from ``<prefix>/best_layers.json``; a number: that layer). Their runs are then
    Table B's (same config, same name): a layer Table B already ran is not run twice."""
    import dataclasses

    from .report import BEST_LAYERS, read_best_layers

    choice = getattr(args, "mllm_layer", None)
    if choice in (None, "-12") or getattr(args, "table", None) != "1":
        return lambda cell: cell
    if choice == "best":
        layers = read_best_layers(Path(args.prefix) / BEST_LAYERS)
    else:
        try:
            fixed = int(choice)
        except ValueError:
            raise LavidError(f"--mllm-layer must be 'best' or one of Table B's layers {list(tables.TABLE_B_LAYERS)}, "
                             f"got {choice!r}") from None
        if fixed not in tables.TABLE_B_LAYERS:
            raise LavidError(f"--mllm-layer {fixed}: Table B's banks hold layers {list(tables.TABLE_B_LAYERS)}")
    kinds = {v: k for k, v in tables.MLLM_ROWS.items()}

    def move(cell):
        if cell.method not in kinds:
            return cell
        kind = kinds[cell.method]
        if choice == "best":
            layer = layers.get(cell.folder, {}).get(cell.student, {}).get(kind)
            if layer is None:
                raise LavidError(f"{Path(args.prefix) / BEST_LAYERS} has no best layer for {cell.folder} "
                                 f"{cell.student} {kind}: finish its Table B runs and write it again")
        else:
            layer = fixed
        return dataclasses.replace(cell, table="tableB", method=tables.layer_method(kind, layer))

    return move


def commands(args):
    from .config import load_cfg

    prefix = Path(args.prefix)
    written = set()
    layer_of = mllm_layers(args)
    for cell, is_teacher in plan(args.table, args.datasets, args.students, args.methods):
        cell = layer_of(cell)
        path = ROOT / "configs" / "lavid" / cell.path
        if not path.is_file():
            raise LavidError(f"missing config {path}: run scripts/make_configs.py")
        cfg = load_cfg(str(path))
        steps = teacher_jobs(cell, path, getattr(args, "teacher", "released"), getattr(args, "makd_bank", None),
                             getattr(args, "extract_shards", 1))
        deps = [steps[-1].key] if steps else []
        yield from first_time(steps, written)
        for seed in ([0] if is_teacher else range(args.seeds)):
            name = path.stem if is_teacher else f"{path.stem}_seed{seed}"
            opts = ["EXPERIMENT.SEED", str(seed), "EXPERIMENT.NAME", name, "LOG.PREFIX", str(prefix)]
            run_deps = list(deps)
            if cell.needs_visual_teacher:  # the teacher trained above, under the same prefix
                teacher_run = prefix / cfg.EXPERIMENT.PROJECT / cell.teacher().name
                opts += ["DISTILLER.TEACHER_CKPT", str(teacher_run / "student_best")]
                run_deps.append(str(teacher_run))
            run_dir = prefix / cfg.EXPERIMENT.PROJECT / name
            state, cmd = train_command(path, run_dir, cfg.SOLVER.EPOCHS, opts)
            yield Job(state, cmd, key=str(run_dir), deps=run_deps, run_dir=run_dir, label=cell.tag)


def needed(jobs: list[Job]) -> list[Job]:
    """The plan without the teacher files that only finished runs read (a finished run needs nothing)."""
    need = set()
    for j in reversed(jobs):  # the plan lists a job after what it waits for
        if (j.kind == "run" and j.state != "finished") or j.key in need:
            need.update(j.deps)
    return [j for j in jobs if j.kind == "run" or j.key in need]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from .ablations import ABLATIONS

    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", choices=list(tables.TABLES))
    what.add_argument("--ablation", choices=list(ABLATIONS), help="an ablation on CUB / ResNet-18 (see lavid_plugin/ablations.py)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", nargs="+", help="Table 1/4: datasets; Table 3: ImageNet groups")
    p.add_argument("--students", nargs="+", choices=[s for s in tables.STUDENTS if s != tables.TEACHER_STUDENT])
    p.add_argument("--methods", nargs="+")
    p.add_argument("--prefix", default="./output", help="LOG.PREFIX of every run")
    p.add_argument("--base", help="--ablation: the LaViD config to vary (default configs/lavid/cub/res18.yaml)")
    p.add_argument("--opts", nargs="+", metavar="KEY VALUE", help="--ablation: overrides for every run")
    p.add_argument("--values", nargs="+", metavar="V", help="--ablation: only these points of its axis")
    p.add_argument("--teacher", choices=("released", "extract"), default="released",
                   help="where a missing signature (and MaKD bank) comes from: released (default): the authors' released "
                        "files, fetched at a pinned commit and verified (lavid signature|teacher released), extracted "
                        "where they released none; extract: extracted with the paper's LLM / VLM")
    p.add_argument("--makd-bank", choices=("released", "extract"), help="where MaKD's per-image bank comes from "
                   "(default: as --teacher)")
    p.add_argument("--extract-shards", type=int, default=1, metavar="N",
                   help="a signature extracted here is answered as N shard jobs (lavid signature extract --shard i/N; "
                        "one job array under --launcher slurm), then joined by lavid signature merge")
    p.add_argument("--mllm-layer", default="-12", metavar="best|LAYER",
                   help="Table 1's FitNet / CRD rows on LLaVA: layer -12 (default), one of Table B's layers, or best: "
                        "each column's best layer of Table B (lavid report PREFIX --table B --best-layer writes "
                        "PREFIX/best_layers.json); those runs are Table B's own (a layer it ran is not run again)")
    p.add_argument("--dry-run", action="store_true", help="print the commands (or, with a launcher, the plan), run nothing")
    g = p.add_argument_group("launchers (one plan, several executors)")
    g.add_argument("--launcher", choices=("sequential", "local", "slurm"), default="sequential",
                   help="sequential: one run after another here (the default); local: --jobs runs at once on this "
                        "machine; slurm: one SLURM job per run through submitit (pip install 'lavid-plugin[cluster]')")
    g.add_argument("--jobs", type=int, default=1, help="local: runs at once")
    g.add_argument("--gpus", default="", help="local: the GPUs to share out, e.g. 0,1,2,3 (each run gets "
                                               "--gpus-per-run of them); default: CUDA_VISIBLE_DEVICES or none")
    g.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run (several: torchrun inside the job)")
    g.add_argument("--cpus-per-run", type=int, default=8)
    g.add_argument("--retries", type=int, default=1, help="a run that fails for a real reason is run again this often "
                                                           "(preemption and time limits do not count)")
    g.add_argument("--partition", default=None, help="slurm: the partition")
    g.add_argument("--mem", default=None, help="slurm: memory per run, e.g. 64G")
    g.add_argument("--time", type=int, default=24 * 60, help="slurm: time limit per job, minutes (a run that hits it is "
                                                             "requeued and resumes)")
    g.add_argument("--max-parallel", type=int, default=64, help="slurm: array throttle (runs of one array at once)")
    g.add_argument("--slurm-opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="slurm: more sbatch options, e.g. account=myproj qos=high constraint=a100")
    args = p.parse_args(argv)
    try:
        if args.seeds < 1:
            raise LavidError(f"--seeds must be at least 1, got {args.seeds}")
        if args.extract_shards < 1:
            raise LavidError(f"--extract-shards must be at least 1, got {args.extract_shards}")
        todo = needed(list(ablation_commands(args) if args.ablation else commands(args)))
    except LavidError as e:
        print(f"reproduce.py: error: {e}", file=sys.stderr)
        return 2
    runs = [j.state for j in todo if j.state not in ("stage1b", "blocked")]
    n_done = runs.count("finished")
    n_banks = len(todo) - len(runs)
    print(f"{f'Ablation {args.ablation}' if args.ablation else f'Table {args.table}'}: {len(runs)} runs, {n_done} finished, {len(runs) - n_done} to run"
          + (f"; {n_banks} teacher file(s) to write first (Stage 1 / 1b)" if n_banks else ""), flush=True)
    for job in todo:
        if job.note and job.state == "stage1b":
            print(f"teacher file {job.key}: {job.note}")
    if args.launcher != "sequential":
        from .launcher import launch

        try:
            return launch(args, todo)
        except LavidError as e:
            print(f"reproduce.py: error: {e}", file=sys.stderr)
            return 2
    for job in todo:
        state, cmd = job.state, job.cmd
        line = shlex.join(cmd)
        if state == "finished":
            print(f"skip (finished): {line}")
            continue
        if state == "blocked":
            print(f"{'would need' if args.dry_run else 'stopped: first write'} {job.note}: {line}", flush=True)
            if args.dry_run:
                continue
            return 2
        print(("would run: " if args.dry_run else "run: ") + line, flush=True)
        if not args.dry_run:
            rc = subprocess.call(cmd, cwd=ROOT)
            if rc != 0:
                print(f"stopped: the run above exited with {rc}; fix it and run this again (finished runs are skipped)")
                return rc
    if not args.dry_run:
        what = f"--ablation {args.ablation}" if args.ablation else f"--table {args.table}"
        print(f"all runs finished; the table: lavid report {args.prefix} {what}")
    return 0
