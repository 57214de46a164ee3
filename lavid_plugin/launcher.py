"""Run a reproduction's plan where its runs should run: N at a time on this machine
(``--launcher local``) or as SLURM jobs through submitit (``--launcher slurm``).

The plan is :func:`lavid_plugin.reproduce` 's graph of :class:`~lavid_plugin.reproduce.Job`: teacher
files (Stage 1 / 1b), the ResNet-50 teachers, the student runs, each with the jobs it waits for. The
executors only decide where a job runs; what a job is, and which jobs come first, is the plan's.

* **local**: ``--jobs N`` runs at once (a thread per run waiting on its ``tools/train.py`` process);
  each run gets its GPU(s) through ``CUDA_VISIBLE_DEVICES`` or, on a CPU, its share of the cores. A
  failed run does not stop the others; the jobs that wait for it are skipped and listed.
* **slurm**: submitit renders and submits the sbatch scripts: one job per run, as job arrays where
  runs share their dependencies, ``afterok`` dependencies on the jobs they wait for, logs under
  ``<prefix>/slurm/<job id>``. A job that SLURM stops for its time limit or a preemption is requeued
  by submitit's checkpoint hook and continues with ``--resume`` (the trainer resumes bit-exactly).

A run killed by SIGTERM (what SLURM sends on preemption) is requeued, not counted as a failure; a run
that fails for a real reason is run again ``--retries`` times, then marked failed with its last error
line. What every job did is kept in ``<prefix>/launcher/state.json`` (``lavid status`` reads it), so
launching the same command again submits only what is missing or failed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from .errors import LavidError
from .utils import atomic_write_json, get_logger

#: the repository (or installed package's parent): commands run from here, as scripts/reproduce.py runs them
ROOT = Path(__file__).resolve().parents[1]
#: exit codes of a process stopped by SIGTERM (directly, or as a shell reports it)
PREEMPTED = (-signal.SIGTERM, 128 + signal.SIGTERM)
#: SLURM job states in which a recorded job still holds its run (a relaunch must not submit it again)
ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")
MAX_REQUEUES = 100


# ------------------------------------------------------------------ the plan as a graph
def ordered(jobs) -> list:
    """The jobs with every dependency before its dependents; a dependency on nothing in the plan must
    already be satisfied on disk (a file that exists, a run that finished)."""
    by_key = {}
    for j in jobs:
        if j.key in by_key:
            raise LavidError(f"the plan lists {j.key} twice")
        by_key[j.key] = j
    out, mark = [], {}

    def visit(j, path):
        if mark.get(j.key) == "done":
            return
        if mark.get(j.key) == "visiting":
            raise LavidError(f"the plan has a dependency cycle: {' -> '.join(path + [j.key])}")
        mark[j.key] = "visiting"
        for d in j.deps:
            if d in by_key:
                visit(by_key[d], path + [j.key])
        mark[j.key] = "done"
        out.append(j)

    for j in jobs:
        visit(j, [])
    return out


def describe(jobs, chains: int = 3) -> str:
    """Counts per kind of job and the first dependency chains: what a launcher would run."""
    runs = [j for j in jobs if j.kind == "run"]
    waited_for = {d for j in jobs for d in j.deps}
    teachers = [j for j in runs if j.key in waited_for]
    files = [j for j in jobs if j.kind == "file"]
    todo = [j for j in jobs if j.state != "finished"]
    lines = [f"plan: {len(jobs)} jobs ({len(todo)} to run): {len(files)} teacher file(s) (Stage 1 / 1b), "
             f"{len(teachers)} visual teacher run(s), {len(runs) - len(teachers)} student run(s); "
             f"{sum(bool(j.deps) for j in jobs)} wait for another job"]
    by_key = {j.key: j for j in jobs}
    shown, seen = 0, set()
    for j in jobs:
        if j.deps and shown < chains and j.deps[0] not in seen:  # one chain per job waited for
            seen.add(j.deps[0])
            chain = [j.key]
            while by_key.get(chain[-1]) is not None and by_key[chain[-1]].deps:
                chain.append(by_key[chain[-1]].deps[0])
            lines.append("  " + " <- ".join(reversed([_short(k) for k in chain])))
            shown += 1
    return "\n".join(lines)


def _short(key: str) -> str:
    p = Path(key)
    return "/".join(p.parts[-2:]) if len(p.parts) > 1 else key


def _satisfied(key: str) -> bool:
    """A dependency outside the plan: a file that exists or a run folder whose run finished."""
    p = Path(key)
    if (p / "worklog.txt").is_file():
        return "best_acc" in (p / "worklog.txt").read_text()
    return p.is_file() or (ROOT / p).is_file()


# ------------------------------------------------------------------ what every job did
class StateBook:
    """``<prefix>/launcher/state.json``: per job key its state (queued / running / finished / failed /
    skipped), log, last error line, attempts and SLURM job id; written atomically, thread-safe."""

    def __init__(self, prefix: Path):
        self.path = Path(prefix) / "launcher" / "state.json"
        self.lock = threading.Lock()
        try:
            self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str) -> dict:
        return dict(self.data.get(key, {}))

    def update(self, key: str, **values) -> None:
        with self.lock:
            self.data.setdefault(key, {}).update(values, updated=time.time())
            atomic_write_json(self.path, self.data)


def last_error_line(log: Path) -> str:
    """The line a person would read first: the last ``error`` line of the log, else its last line."""
    try:
        lines = [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [""])[-1][:500]


def with_resume(cmd: list, run_dir) -> list:
    """The run's command, continuing from its checkpoint when it has one."""
    if run_dir is not None and (Path(run_dir) / "latest").is_file() and "--resume" not in cmd:
        return list(cmd) + ["--resume"]
    return list(cmd)


def multi_gpu(cmd: list, gpus: int) -> list:
    """A training command on ``gpus`` GPUs of one node: torchrun around tools/train.py (the DDP path)."""
    if gpus <= 1 or "tools/train.py" not in " ".join(map(str, cmd[:2])):
        return list(cmd)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", *cmd[1:]]


# ------------------------------------------------------------------ local: N at a time on this machine
def _gpu_groups(spec: str, per_run: int) -> list:
    ids = [g for g in (spec or os.environ.get("CUDA_VISIBLE_DEVICES", "")).split(",") if g.strip()]
    return [",".join(ids[i:i + per_run]) for i in range(0, len(ids) - per_run + 1, max(per_run, 1))]


def run_one_local(job, *, log: Path, env: dict, retries: int, book: StateBook, gpus: int = 1) -> tuple[bool, str]:
    """Run ``job`` to its end: requeued (``--resume``) after SIGTERM, retried ``retries`` times after a
    failure; ``(ok, last error line)``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    failures = requeues = 0
    while True:
        cmd = multi_gpu(with_resume(job.cmd, job.run_dir), gpus)
        with open(log, "a") as out:
            out.write(f"$ {shlex.join(map(str, cmd))}\n")
            out.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            book.update(job.key, state="running", pid=proc.pid, log=str(log), host=os.uname().nodename)
            rc = proc.wait()
        if rc == 0:
            book.update(job.key, state="finished", pid=None, error="")
            return True, ""
        if rc in PREEMPTED and requeues < MAX_REQUEUES:  # preemption / time limit: continue where it stopped
            requeues += 1
            book.update(job.key, state="queued", requeues=requeues)
            get_logger().info(f"requeued (stopped by SIGTERM): {_short(job.key)}")
            continue
        failures += 1
        error = last_error_line(log)
        if failures > retries:
            book.update(job.key, state="failed", pid=None, error=error, attempts=failures)
            return False, error
        book.update(job.key, state="queued", attempts=failures, error=error)
        get_logger().warning(f"retry {failures}/{retries} of {_short(job.key)}: {error}")


def run_local(args, jobs, book: StateBook) -> int:
    """``--jobs`` runs at once; dependencies first; a failure skips only what waits for it."""
    plan = ordered(jobs)
    keys = {j.key for j in plan}
    done = {j.key for j in plan if j.state == "finished"}
    todo = [j for j in plan if j.key not in done]
    groups = _gpu_groups(args.gpus, args.gpus_per_run)
    if groups and len(groups) < args.jobs:
        raise LavidError(f"--jobs {args.jobs} with --gpus-per-run {args.gpus_per_run} needs {args.jobs * args.gpus_per_run} "
                         f"GPUs; --gpus gives {len(groups)} group(s): {groups}")
    threads = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    prefix = Path(args.prefix)
    failed, skipped = {}, []
    free = list(groups)
    running = {}
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        while todo or running:
            for j in list(todo):  # what waits for a failed or skipped job is skipped, and said
                bad = [d for d in j.deps if d in failed or d in skipped]
                if bad:
                    todo.remove(j)
                    skipped.append(j.key)
                    book.update(j.key, state="skipped", error=f"waits for {_short(bad[0])}, which did not finish")
            ready = [j for j in todo if all(d in done or (d not in keys and _satisfied(d)) for d in j.deps)]
            for j in [j for j in ready if j.state == "blocked"]:
                ready.remove(j)
                todo.remove(j)
                failed[j.key] = f"needs your LLM first: {shlex.join(map(str, j.cmd))}"
                book.update(j.key, state="failed", error=failed[j.key])
            while ready and len(running) < args.jobs:
                j = ready.pop(0)
                todo.remove(j)
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                                os.environ.get("PYTHONPATH")])))
                group = free.pop(0) if groups else None
                if group is not None:
                    env["CUDA_VISIBLE_DEVICES"] = group
                else:
                    env.setdefault("OMP_NUM_THREADS", str(threads))
                log = prefix / "launcher" / "logs" / (_short(j.key).replace("/", "__") + ".log")
                book.update(j.key, state="queued", log=str(log))
                get_logger().info(f"start: {_short(j.key)}" + (f" on GPU {group}" if group else ""))
                fut = pool.submit(run_one_local, j, log=log, env=env, retries=args.retries, book=book,
                                  gpus=args.gpus_per_run if group else 1)
                running[fut] = (j, group)
            if not running:
                for j in todo:  # nothing runs and nothing can start: their dependencies are missing
                    skipped.append(j.key)
                    book.update(j.key, state="skipped", error="a job it waits for is not in the plan nor on disk")
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                j, group = running.pop(fut)
                if group is not None:
                    free.append(group)
                ok, error = fut.result()
                if ok:
                    done.add(j.key)
                    get_logger().info(f"finished: {_short(j.key)}")
                else:
                    failed[j.key] = error
                    get_logger().warning(f"failed: {_short(j.key)}: {error}")
    print(f"local: {len(done)} finished, {len(failed)} failed, {len(skipped)} skipped")
    for key, error in failed.items():
        print(f"  failed: {key}: {error} (log {book.get(key).get('log')})")
    for key in skipped:
        print(f"  skipped: {key}: {book.get(key).get('error')}")
    return 0 if not failed and not skipped else 1


# ------------------------------------------------------------------ slurm: submitit
class RunCommand:
    """A job's command inside a SLURM job. submitit calls :meth:`checkpoint` when SLURM signals a time
    limit or a preemption: the job is requeued, and the run continues from its checkpoint."""

    def __init__(self, retries: int = 1, gpus: int = 1):
        self.retries, self.gpus = retries, gpus

    def __call__(self, cmd: list, run_dir: str | None) -> None:
        rc = 0
        for _ in range(self.retries + 1):
            full = multi_gpu(with_resume(cmd, run_dir), self.gpus)
            print(f"$ {shlex.join(map(str, full))}", flush=True)
            rc = subprocess.call(full, cwd=ROOT)
            if rc == 0:
                return
        raise RuntimeError(f"{shlex.join(map(str, cmd))} exited with {rc} ({self.retries + 1} attempts)")

    def checkpoint(self, cmd: list, run_dir: str | None):
        import submitit

        return submitit.helpers.DelayedSubmission(RunCommand(self.retries, self.gpus), cmd, run_dir)


def _squeue_states(ids: list[str]) -> dict:
    """``{job id: state}`` of the recorded jobs SLURM still knows."""
    if not ids:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)


def run_slurm(args, jobs, book: StateBook) -> int:
    """Submit the plan: job arrays of runs that wait for the same jobs, ``afterok`` on those."""
    try:
        import submitit
    except ImportError:
        raise LavidError("--launcher slurm needs submitit: pip install 'lavid-plugin[cluster]'") from None
    plan = [j for j in ordered(jobs)]
    prefix = Path(args.prefix).resolve()
    recorded = {j.key: book.get(j.key).get("job_id") for j in plan if book.get(j.key).get("job_id")}
    states = _squeue_states(sorted(set(recorded.values())))
    ids = {k: v for k, v in recorded.items() if states.get(v) in ACTIVE}  # queued or running: not again
    extra = dict(kv.split("=", 1) for kv in args.slurm_opts)
    groups: dict = {}
    for j in plan:
        if j.state in ("finished", "blocked") or j.key in ids:
            continue
        groups.setdefault((j.kind, tuple(sorted(j.deps))), []).append(j)
    submitted = 0
    for (kind, deps), members in groups.items():  # in plan order: a group's dependencies are submitted before it
        wait_for = [ids[d] for d in deps if d in ids]
        missing = [d for d in deps if d not in ids and not _satisfied(d)]
        if missing:
            for j in members:
                book.update(j.key, state="skipped", error=f"waits for {_short(missing[0])}, which is neither "
                                                           f"submitted nor on disk")
            continue
        try:
            executor = submitit.SlurmExecutor(folder=prefix / "slurm" / "%j")
        except RuntimeError as e:  # no srun: not on a SLURM cluster
            raise LavidError(f"--launcher slurm: {e} (use --launcher local on a single machine)") from None
        params = dict(job_name=f"lavid-{kind}", time=args.time, cpus_per_task=args.cpus_per_run,
                      array_parallelism=args.max_parallel, additional_parameters=extra)
        if args.partition:
            params["partition"] = args.partition
        if args.mem:
            params["mem"] = args.mem
        if args.gpus_per_run and kind == "run":
            params["gpus_per_node"] = args.gpus_per_run
        if wait_for:
            params["dependency"] = "afterok:" + ":".join(wait_for)
        executor.update_parameters(**params)
        fn = RunCommand(args.retries, args.gpus_per_run if kind == "run" else 1)
        subs = executor.map_array(fn, [j.cmd for j in members], [str(j.run_dir) if j.run_dir else None for j in members])
        for j, sub in zip(members, subs):
            ids[j.key] = sub.job_id
            book.update(j.key, state="queued", job_id=sub.job_id, log=str(prefix / "slurm" / str(sub.job_id)))
        submitted += len(members)
    print(f"slurm: submitted {submitted} job(s); {len(ids) - submitted} already queued or running; "
          f"logs under {prefix / 'slurm'}; watch with: lavid status {args.prefix} "
          f"{'--ablation ' + args.ablation if getattr(args, 'ablation', None) else '--table ' + str(args.table)}")
    return 0


def launch(args, jobs) -> int:
    """``reproduce.py --launcher local|slurm``: the plan, printed with --dry-run, else run or submitted."""
    plan = ordered(jobs)
    if args.dry_run:
        print(describe(plan))
        return 0
    book = StateBook(Path(args.prefix))
    for j in plan:  # a file that needs the user's LLM: its runs wait (skipped, and said); the rest go ahead
        if j.state == "blocked":
            print(f"blocked: {j.key}: needs {j.note or 'your LLM'} first: {shlex.join(map(str, j.cmd))}")
    return run_local(args, plan, book) if args.launcher == "local" else run_slurm(args, plan, book)
