"""``tools/train.py`` and ``tools/eval.py``: mdistiller's command line, single process or torchrun."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import LavidError


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


def train(cfg, resume=False, opts=(), *, stop_after_epoch=None, progress=True, resume_force=False):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..utils import atomic_write_json, atomic_write_text, get_logger
    from .build import build_distiller, distiller_class, setup_data
    from .checkpoints import check_resume
    from .trainer import RunSpec, Trainer, seed_everything

    if cfg.SOLVER.EPOCHS < 1:
        raise LavidError(f"SOLVER.EPOCHS must be at least 1, got {cfg.SOLVER.EPOCHS}")
    rank, world, device = setup_distributed()
    seed_everything(cfg.EXPERIMENT.SEED, cfg.EXPERIMENT.DETERMINISTIC)
    cls = distiller_class(cfg)
    name = experiment_name(cfg, list(opts))
    run_dir = os.path.join(cfg.LOG.PREFIX, name)
    gen = torch.Generator()
    gen.manual_seed(max(cfg.EXPERIMENT.SEED, 0))
    run = setup_data(cfg, cls, run_dir=run_dir, rank=rank, world=world, generator=gen)
    distiller = build_distiller(cfg, run.context, cls).to(device)
    if resume:  # the same setup as the run it continues (before config.yaml is overwritten)
        if not (Path(run_dir) / "latest").is_file():
            raise LavidError(f"--resume: no checkpoint at {Path(run_dir) / 'latest'}")
        check_resume(Path(run_dir), cfg.dump(), run.context.teacher_hashes, force=resume_force)
    if rank == 0:  # only once everything was built: a run that cannot start leaves no folder behind
        atomic_write_text(os.path.join(run_dir, "config.yaml"), cfg.dump())  # what `lavid report` reads
        atomic_write_json(os.path.join(run_dir, "teachers.json"), run.context.teacher_hashes)
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
    trainer.train(resume=resume, stop_after_epoch=stop_after_epoch)
    if world > 1:
        dist.barrier()
    return trainer
