"""The grid where users run it: one plan (a graph of jobs) and its executors, sequential (today's),
local (N at a time) and SLURM through submitit, with `lavid status` and half-finished reports.

No cluster here: the local executor runs for real; the SLURM one renders its sbatch scripts with
submitit and submits them to a stand-in `sbatch` on PATH (and `squeue` for what is queued)."""

import argparse
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

from helpers import small_demo
from lavid_plugin.cli import main as lavid
from lavid_plugin.launcher import StateBook, describe, ordered, run_local
from lavid_plugin.reproduce import Job, ablation_commands, commands
from lavid_plugin.reproduce import main as reproduce

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lavid" / "demo" / "res18.yaml"


def table_args(prefix, table="1", **kw):
    return argparse.Namespace(table=table, datasets=kw.get("datasets", ["cub"]), students=kw.get("students"),
                              methods=kw.get("methods"), seeds=kw.get("seeds", 2), prefix=str(prefix),
                              teacher=kw.get("teacher", "released"), makd_bank=kw.get("makd_bank"))


# ------------------------------------------------------------------ the plan graph
def test_the_plan_is_a_graph_teachers_and_banks_before_the_runs_that_read_them(tmp_path):
    jobs = list(commands(table_args(tmp_path)))
    keys = [j.key for j in jobs]
    assert len(keys) == len(set(keys))  # each job once
    by_key = {j.key: j for j in jobs}
    order = [j.key for j in ordered(jobs)]
    for j in jobs:
        for d in j.deps:
            assert d in by_key and order.index(d) < order.index(j.key), (j.key, d)  # no cycle, deps first
    teacher = str(tmp_path / "lavid_cub" / "res50_vanilla")
    assert teacher in by_key[str(tmp_path / "lavid_cub" / "res18_lavid_ls_seed1")].deps  # LaViD+LS: R50 first
    # LaViD alone waits for its signature only: the authors' released answers, fetched and imported
    (sig,) = by_key[str(tmp_path / "lavid_cub" / "res18_seed0")].deps
    assert sig == "signatures/cub/qwen2.5-7b_chat_50-5.safetensors" and "released" in by_key[sig].cmd
    makd = by_key[str(tmp_path / "lavid_cub" / "res18_makd_seed0")]
    (bank,) = makd.deps  # MaKD: the authors' released InternVL2 bank of CUB, imported for the config
    assert bank.endswith("banks/cub/internvl2-8b_aspects.safetensors")
    assert by_key[bank].cmd[-7:-2] == ["teacher", "released", "cub", "--cfg", "configs/lavid/cub/res18_makd.yaml"]
    # extracted instead: the bank waits for its aspect questions, which need the user's LLM (a blocked job)
    own = {j.key: j for j in commands(table_args(tmp_path, makd_bank="extract"))}
    (bank,) = own[str(tmp_path / "lavid_cub" / "res18_makd_seed0")].deps
    (first,) = own[bank].deps
    assert first.endswith("aspect_questions.txt") and own[first].state == "blocked"
    emb = {j.key: j for j in commands(table_args(tmp_path, table="5"))}
    run = emb[str(tmp_path / "lavid_cub" / "res18_emb_minilm_seed0")]
    assert run.deps == ["./signatures/cub/minilm_384.safetensors"] and run.deps[0] in emb  # the embedding first
    text = describe(ordered(jobs))
    assert "6 visual teacher" not in text and "1 visual teacher run(s)" in text and "wait for another job" in text


def test_a_dependency_cycle_is_refused():
    from lavid_plugin.errors import LavidError

    a, b = Job("new", ["x"], key="a", deps=["b"]), Job("new", ["y"], key="b", deps=["a"])
    with pytest.raises(LavidError, match="cycle: a -> b -> a"):
        ordered([a, b])


def test_local_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    assert reproduce(["--table", "1", "--datasets", "cub", "--seeds", "3", "--launcher", "local", "--jobs", "2",
                      "--prefix", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan: 103 jobs (103 to run): 3 teacher file(s) (Stage 1 / 1b), 1 visual teacher run(s), 99 student run(s)" in out and " <- " in out and not list(tmp_path.iterdir())


# ------------------------------------------------------------------ local: N at a time
def _tiny_ablation(prefix, *extra):
    args = argparse.Namespace(ablation="lambda", base=str(DEMO), seeds=1, prefix=str(prefix), values=["10", "20", "30", "40"],
                              opts=["SOLVER.EPOCHS", "2", "DATASET.IMAGE_SIZE", "32", "DISTILLER.STUDENT", "resnet_tiny",
                                    "SOLVER.BATCH_SIZE", "8", "DATASET.NUM_WORKERS", "0", *extra])
    return list(ablation_commands(args))


def _local_args(prefix, jobs=2):
    return argparse.Namespace(jobs=jobs, gpus="", gpus_per_run=1, retries=1, prefix=str(prefix))


def test_local_gives_each_of_two_runs_one_of_two_cores(tmp_path, monkeypatch):
    import lavid_plugin.launcher as launcher

    seen = []
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(launcher, "run_one_local", lambda job, **kw: seen.append(kw["env"]["OMP_NUM_THREADS"]) or (True, ""))
    jobs = [Job("new", ["x"], key=k) for k in ("a", "b")]
    assert run_local(_local_args(tmp_path), jobs, StateBook(tmp_path)) == 0
    assert seen == ["1", "1"]


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    names = small_demo(root / "birds", train=2, test=1)
    from helpers import random_signature

    random_signature(names, counts=(2, 2)).save(root / "sig.safetensors")
    return root


def test_local_runs_two_at_a_time_and_a_preempted_run_resumes_to_the_same_weights(demo_tree, tmp_path, monkeypatch):
    from lavid_plugin.cli.train import train_main

    data = ["DATASET.ROOT", str(demo_tree / "birds"), "LAVID.SIGNATURE", str(demo_tree / "sig.safetensors")]
    straight = _tiny_ablation(tmp_path / "straight", *data)
    # the uninterrupted runs, in this process with the one thread each of the two local runs gets
    # (OMP_NUM_THREADS = 2 cores / 2 jobs): the same kernels, so the same numbers
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)
    try:
        for j in straight:
            assert train_main([str(a) for a in j.cmd[2:]] + ["-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("LAVID_FAULT", "before-worklog:1:TERM")  # every run is preempted once, mid-run
    jobs = _tiny_ablation(tmp_path / "pre", *data)
    assert len(jobs) == 4 and all(j.state == "new" for j in jobs)
    book = StateBook(tmp_path / "pre")
    assert run_local(_local_args(tmp_path / "pre"), jobs, book) == 0
    for a, b in zip(straight, jobs):
        assert book.get(b.key)["state"] == "finished" and book.get(b.key)["requeues"] == 1
        wa = torch.load(a.run_dir / "student_latest", weights_only=True)["model"]
        wb = torch.load(b.run_dir / "student_latest", weights_only=True)["model"]
        assert all(torch.equal(wa[k], wb[k]) for k in wa)  # requeued with --resume: the same run
        log = (b.run_dir / "worklog.txt").read_text()
        assert log.count("epoch: 1") == 1 and log.count("epoch: 2") == 1


def test_a_failed_run_does_not_stop_the_others_and_its_dependents_are_skipped(tmp_path, capsys):
    py = sys.executable
    jobs = [Job("new", [py, "-c", "import sys; print('error: out of memory'); sys.exit(3)"], key="bad"),
            Job("new", [py, "-c", "pass"], key="after-bad", deps=["bad"]),
            Job("new", [py, "-c", "pass"], key="ok1"), Job("new", [py, "-c", "pass"], key="ok2", deps=["ok1"])]
    book = StateBook(tmp_path)
    assert run_local(_local_args(tmp_path), jobs, book) == 1
    out = capsys.readouterr().out
    assert "local: 2 finished, 1 failed, 1 skipped" in out and "failed: bad: error: out of memory" in out
    assert book.get("bad")["attempts"] == 2  # --retries 1: tried twice, then failed with its last error line
    assert book.get("after-bad")["state"] == "skipped" and "waits for bad" in book.get("after-bad")["error"]
    assert book.get("ok2")["state"] == "finished"


# ------------------------------------------------------------------ slurm through submitit (no cluster)
@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """`sbatch` that keeps each script and answers a job id; `squeue` that says RUNNING for listed ids."""
    pytest.importorskip("submitit", reason="the [cluster] extra")
    bin_, record = tmp_path / "bin", tmp_path / "submitted"
    bin_.mkdir()
    record.mkdir()
    (bin_ / "sbatch").write_text(f"""#!/bin/sh
n=$(ls {record} | wc -l); id=$((1000 + n))
cp "$1" {record}/$id.sh
echo "Submitted batch job $id"
""")
    running = tmp_path / "running.txt"
    running.write_text("")
    (bin_ / "squeue").write_text(f"#!/bin/sh\ncat {running}\n")
    (bin_ / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it to know it is on a cluster
    for f in bin_.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    return record, running


def test_slurm_renders_arrays_with_the_resources_throttle_and_afterok_dependencies(tmp_path, fake_slurm, capsys):
    record, running = fake_slurm
    args = ["--table", "1", "--datasets", "cub", "--methods", "vanilla", "kd", "--students", "res18", "--seeds", "2",
            "--launcher", "slurm", "--partition", "gpu", "--gpus-per-run", "2", "--cpus-per-run", "6", "--mem", "48G",
            "--time", "600", "--max-parallel", "2", "--slurm-opts", "account=proj", "--prefix", str(tmp_path / "out")]
    assert reproduce(args) == 0
    scripts = {p.stem: p.read_text() for p in sorted(record.iterdir())}
    # one array of the runs that wait for nothing (the R50 teacher first, the vanilla runs), one of the KD runs
    assert len(scripts) == 2
    first, kd = scripts["1000"], scripts["1001"]
    for s in scripts.values():
        assert "#SBATCH --partition=gpu" in s and "#SBATCH --time=600" in s and "#SBATCH --account=proj" in s
        assert "#SBATCH --gpus-per-node=2" in s and "#SBATCH --cpus-per-task=6" in s and "#SBATCH --mem=48G" in s
        assert "#SBATCH --signal=USR2@" in s  # submitit's checkpoint hook: requeue on time limit / preemption
        assert f"{tmp_path / 'out' / 'slurm'}/%j" in s or f"{tmp_path / 'out' / 'slurm'}/%A_%a" in s  # logs
    assert "#SBATCH --array=0-2%2" in first and "#SBATCH --array=0-1%2" in kd  # the throttle
    assert "#SBATCH --dependency=afterok:1000_0" in kd and "--dependency" not in first  # KD waits for the R50
    book = json.loads((tmp_path / "out" / "launcher" / "state.json").read_text())
    assert book[str(tmp_path / "out" / "lavid_cub" / "res50_vanilla")]["job_id"] == "1000_0"
    assert sorted(v["job_id"] for v in book.values()) == ["1000_0", "1000_1", "1000_2", "1001_0", "1001_1"]
    # the same command again: what is queued or running is not submitted a second time
    running.write_text("".join(f"{v['job_id']} RUNNING\n" for v in book.values()))
    capsys.readouterr()
    assert reproduce(args) == 0
    assert len(list(record.iterdir())) == 2 and "submitted 0 job(s); 5 already queued or running" in capsys.readouterr().out


def test_a_signature_extracted_in_shards_is_one_array_then_one_merge(tmp_path, fake_slurm):
    """--teacher extract --extract-shards 3: the three shards wait for the same job (the released questions),
    so they are one array; the merge waits for each of them, the LaViD runs for the merge."""
    record, _ = fake_slurm
    assert reproduce(["--table", "1", "--datasets", "cub", "--methods", "lavid", "--students", "res18", "--seeds", "1",
                      "--teacher", "extract", "--extract-shards", "3", "--launcher", "slurm",
                      "--prefix", str(tmp_path / "out")]) == 0
    scripts = [p.read_text() for p in sorted(record.iterdir())]
    assert len(scripts) == 4  # questions, the shard array, the merge, the run
    assert "#SBATCH --array=0-2%3" in scripts[1] and "#SBATCH --dependency=afterok:1000\n" in scripts[1]
    assert "#SBATCH --dependency=afterok:1001_0:1001_1:1001_2\n" in scripts[2]
    assert "#SBATCH --dependency=afterok:1002\n" in scripts[3] and "--array" not in scripts[2] + scripts[3]
    book = json.loads((tmp_path / "out" / "launcher" / "state.json").read_text())
    shard = book["signatures/cub/qwen2.5-7b_chat_50-5.shard1of3.safetensors"]
    assert shard["job_id"] == "1001_1"
    assert reproduce(["--table", "1", "--extract-shards", "0", "--dry-run"]) == 2


def test_the_run_command_requeues_itself_with_resume(tmp_path):
    pytest.importorskip("submitit", reason="the [cluster] extra")
    from lavid_plugin.launcher import RunCommand

    run = tmp_path / "run"
    run.mkdir()
    (run / "latest").write_bytes(b"x")
    again = RunCommand(retries=1, gpus=1).checkpoint(["python", "tools/train.py", "--cfg", "c.yaml"], str(run))
    assert again.args == (["python", "tools/train.py", "--cfg", "c.yaml"], str(run))
    from lavid_plugin.launcher import multi_gpu, with_resume

    assert with_resume(again.args[0], run)[-1] == "--resume"
    assert multi_gpu(["python", "tools/train.py", "--cfg", "c"], 4)[1:5] == ["-m", "torch.distributed.run",
                                                                           "--standalone", "--nproc_per_node=4"]


# ------------------------------------------------------------------ one view of the grid
def _finished(folder: Path, acc: float, seed: int, tag: str):
    """A run that reached its config's last epoch (a one-block worklog numbered as that epoch)."""
    from lavid_plugin.config import load_cfg

    folder.mkdir(parents=True)
    cfg = load_cfg(str(ROOT / "configs" / "lavid" / "cub" / f"{tag.split(',')[2]}"
                       f"{'' if tag.endswith(',lavid') else '_' + tag.split(',')[3]}.yaml"),
                   ["EXPERIMENT.SEED", str(seed)])
    (folder / "config.yaml").write_text(cfg.dump())
    (folder / "worklog.txt").write_text(f"{'-' * 25}\nepoch: {cfg.SOLVER.EPOCHS}\ntest_acc: {acc:.2f}\ntest_loss: 1.00\n{'-' * 25}\n"
                                        f"best_acc\t{acc:.2f}\n")
    (folder / "epoch_times.tsv").write_text("1\t1800.0\t2\tcuda\n")


def test_status_and_report_on_a_half_finished_grid(tmp_path, capsys):
    out = tmp_path / "out"
    for seed in (0, 1, 2):
        _finished(out / "lavid_cub" / f"res18_vanilla_seed{seed}", 50.0 + seed, seed, "table1,cub,res18,vanilla")
    for seed in (0, 1):
        _finished(out / "lavid_cub" / f"res18_seed{seed}", 60.0 + seed, seed, "table1,cub,res18,lavid")
    book = StateBook(out)
    book.update(str(out / "lavid_cub" / "res18_seed2"), state="failed", error="train.py: error: out of memory",
                log="/logs/x.log")
    book.update(str(out / "lavid_cub" / "res18_kd_seed0"), state="running")
    assert lavid(["status", str(out), "--table", "1", "--datasets", "cub", "--students", "res18", "--methods",
                  "vanilla", "lavid", "kd", "--seeds", "3"]) == 0
    text = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.startswith("table1,")}
    assert lines["table1,cub,res18,vanilla"] == ["3/3", "0", "0", "0"]
    assert lines["table1,cub,res18,lavid"] == ["2/3", "0", "1", "0"]
    assert lines["table1,cub,res18,kd"] == ["0/3", "1", "0", "2"]
    assert "train.py: error: out of memory (log /logs/x.log)" in text and "spent 5.00 GPU-hours" in text
    assert lavid(["report", str(out), "--table", "1", "--seeds", "3"]) == 0
    md = capsys.readouterr().out
    assert "60.50 ± 0.71** (n=2/3)" in md and "51.00 ± 1.00</u> |" in md and "have k of the N seeds asked" in md
