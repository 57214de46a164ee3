"""``tools/train.py`` and ``tools/eval.py``: mdistiller's command line, single process or torchrun."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import LavidError
from ..utils import get_logger


def experiment_name(cfg, opts) -> str:
    """As mdistiller: NAME (or TAG), then the command-line overrides as tags, under PROJECT.

    Unlike mdistiller: ``LOG.PREFIX`` (a location, not a setting) is not a tag; an
    ``EXPERIMENT.NAME`` given on the command line is the name as it is, without tags (launchers such
    as scripts/reproduce.py name each seed's run); a path separator in a value becomes "_"
    (``DATASET.ROOT /data/cub`` must not nest folders); tags longer than the file system allows are
    replaced by a short hash of them."""
    import hashlib

    pairs = dict(zip(opts[::2], opts[1::2]))
    if "EXPERIMENT.NAME" in pairs:
        return os.path.join(cfg.EXPERIMENT.PROJECT, cfg.EXPERIMENT.NAME)
    base = cfg.EXPERIMENT.NAME or cfg.EXPERIMENT.TAG
    tags = ",".join(f"{k}:{str(v).replace(os.sep, '_')}" for k, v in pairs.items() if k != "LOG.PREFIX")
    name = base + tags
    if len(name) > 200:
        name = f"{base}-{hashlib.sha1(tags.encode()).hexdigest()[:12]}"
    return os.path.join(cfg.EXPERIMENT.PROJECT, name)


def setup_distributed():
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: gloo on CPU, nccl on CUDA."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    else:
        device = "cpu"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world, device


def local_buffers(module) -> list[str]:
    """Buffers DDP must not broadcast from rank 0 every step: those of submodules marked ``ddp_local``
    (precomputed teachers, the same on every rank and possibly large; CRD's memory, per rank)."""
    return [f"{name}.{b}" if name else b for name, m in module.named_modules() if getattr(m, "ddp_local", False)
            for b, _ in m.named_buffers(recurse=False)]


#: files that make a folder a run's (a refused or moved-aside start never leaves any of them)
RUN_FILES = ("worklog.txt", "latest", "config.yaml", "best", "student_latest", "student_best")
#: the infix of a run folder moved aside by --overwrite (lavid report does not count such folders)
MOVED_ASIDE = ".moved-"


def claim_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, rank: int = 0) -> None:
    """Before anything is written: a new run never lands in a folder that holds one (``--overwrite``
    moves that folder aside, it never deletes); ``--resume`` needs the run's ``latest``."""
    import time

    if resume:
        if not (run_dir / "latest").is_file():
            parent = run_dir.parent
            base = run_dir.name.split(",")[0].split("SOLVER")[0]
            others = sorted(p.name for p in parent.glob("*") if p.is_dir() and (p / "latest").is_file()) \
                if parent.is_dir() else []
            near = [o for o in others if o.startswith(base[: max(len(base) - 1, 1)])] or others
            hint = (f"; run folders with a checkpoint under {parent}: {near[:10]} (the folder name carries the "
                    f"command line's KEY VALUE overrides: resume with the same ones, or set EXPERIMENT.NAME)"
                    if near else f"; {parent} holds no run with a checkpoint")
            raise LavidError(f"--resume: no checkpoint at {run_dir / 'latest'}{hint}")
        return
    held = [f for f in RUN_FILES if (run_dir / f).exists()]
    if not held:
        return
    if not overwrite:
        raise LavidError(f"{run_dir} holds a run ({', '.join(held)}); starting a new one there would overwrite it. "
                         f"Continue it with --resume, start another with a new EXPERIMENT.NAME, or pass "
                         f"--overwrite to move it aside (to {run_dir.name}{MOVED_ASIDE}<time>; nothing is deleted)")
    if rank == 0:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = run_dir.with_name(f"{run_dir.name}{MOVED_ASIDE}{stamp}")
        k = 1
        while aside.exists():
            aside, k = run_dir.with_name(f"{run_dir.name}{MOVED_ASIDE}{stamp}-{k}"), k + 1
        run_dir.rename(aside)
        get_logger().warning(f"--overwrite: moved the run in {run_dir} to {aside}")


def train(cfg, resume=False, opts=(), *, stop_after_epoch=None, progress=True, resume_force=False, overwrite=False):
    """Build and train one run. Every check (config, run folder, teacher files, the checkpoint to
    resume) passes before the first write: a run that cannot start changes nothing on disk."""
    import time

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..utils import atomic_write_json, atomic_write_text
    from .build import build_distiller, distiller_class, setup_data
    from .checkpoints import check_resume
    from .trainer import RunSpec, Trainer, seed_everything
    from .wandb_log import WandbRun
    from .wandb_log import check_available as check_wandb

    Trainer.check_cfg(cfg)
    check_wandb(cfg)
    cls = distiller_class(cfg)
    name = experiment_name(cfg, list(opts))
    run_dir = os.path.join(cfg.LOG.PREFIX, name)
    rank, world, device = setup_distributed()
    claim_run_dir(Path(run_dir), resume=resume, overwrite=overwrite, rank=rank)
    seed_everything(cfg.EXPERIMENT.SEED, cfg.EXPERIMENT.DETERMINISTIC)
    gen = torch.Generator()
    gen.manual_seed(max(cfg.EXPERIMENT.SEED, 0))
    run = setup_data(cfg, cls, run_dir=run_dir, rank=rank, world=world, generator=gen)
    distiller = build_distiller(cfg, run.context, cls).to(device)
    changed = []
    if resume:  # the same setup as the run it continues (before config.yaml is overwritten)
        changed = check_resume(Path(run_dir), cfg.dump(), run.context.teacher_hashes, force=resume_force)
    if device.startswith("cuda") and cfg.SOLVER.AMP:
        distiller = distiller.to(memory_format=torch.channels_last)
    if cfg.SOLVER.COMPILE:
        distiller.student.compile()  # in place: the module, its parameters and state_dict keys stay
    if world > 1:
        DDP._set_params_and_buffers_to_ignore_for_model(distiller, local_buffers(distiller))
    model = DDP(distiller, device_ids=[int(device.split(":")[1])] if device.startswith("cuda") else None) \
        if world > 1 else distiller
    splits = run.splits
    if rank == 0:
        get_logger().info(f"{cfg.DISTILLER.TYPE} on {cfg.DATASET.TYPE}: {len(splits.train)} train / "
                          f"{len(splits.test)} test images, {len(splits.classes)} classes, device {device}, "
                          f"world {world}, extra parameters {distiller.get_extra_parameters()}")
    spec = RunSpec(name, cfg, device=device, rank=rank, world=world, generator=gen, progress=progress)
    trainer = Trainer(spec, model, run)
    start = trainer.resume() if resume else 1  # a damaged or foreign checkpoint is refused here
    if rank == 0:  # only once everything was built and checked
        if changed:  # --resume-force: the settings the earlier epochs ran with stay on record
            old = Path(run_dir) / "config.yaml"
            old.rename(old.with_name(f"config.before-resume-{time.strftime('%Y%m%d-%H%M%S')}.yaml"))
        atomic_write_text(os.path.join(run_dir, "config.yaml"), cfg.dump())  # what `lavid report` reads
        atomic_write_json(os.path.join(run_dir, "teachers.json"), run.context.teacher_hashes)
        if cfg.LOG.WANDB:
            trainer.wandb = WandbRun(cfg, Path(run_dir), run.context.teacher_hashes, resume=resume)
    trainer.train(stop_after_epoch=stop_after_epoch, start_epoch=start)
    if world > 1:
        dist.barrier()
    return trainer
