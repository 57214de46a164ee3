"""``LOG.WANDB True``: the run's scalars, config and teacher files on Weights & Biases, as mdistiller.

mdistiller calls ``wandb.init(project=EXPERIMENT.PROJECT, name=EXPERIMENT.NAME)`` and logs its epoch
scalars. Here the run also records the full config and the content hash of every precomputed teacher
file (signature, bank) it read, and the wandb run id is kept in the run folder (``wandb_id.txt``) so
that ``--resume`` continues the same wandb run. ``WANDB_MODE=offline`` writes it under the run folder
without a network (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path

from ..errors import LavidError

ID_FILE = "wandb_id.txt"


def check_available(cfg) -> None:
    """Before anything is written: ``LOG.WANDB True`` needs the ``wandb`` package."""
    if cfg.LOG.WANDB and importlib.util.find_spec("wandb") is None:
        raise LavidError("LOG.WANDB True needs wandb: pip install 'lavid-plugin[wandb]'")


class WandbRun:
    """One wandb run per training run; only rank 0 makes one."""

    def __init__(self, cfg, run_dir: Path, teachers: dict, *, resume: bool):
        import wandb

        from ..utils import atomic_write_text

        run_dir = Path(run_dir)
        id_file = run_dir / ID_FILE
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else secrets.token_hex(4)
        config = _plain(cfg)
        config["teacher_files"] = dict(teachers)  # config key -> content hash of the file it named
        self.run = wandb.init(project=cfg.EXPERIMENT.PROJECT, name=cfg.EXPERIMENT.NAME or run_dir.name,
                              tags=[t for t in str(cfg.EXPERIMENT.TAG).split(",") if t], config=config,
                              dir=str(run_dir), id=run_id, resume="allow", reinit="finish_previous")
        # epoch scalars against the epoch, per-step scalars against the global step
        self.run.define_metric("epoch")
        self.run.define_metric("global_step")
        self.run.define_metric("step/*", step_metric="global_step")
        self.run.define_metric("*", step_metric="epoch")
        atomic_write_text(id_file, run_id)

    def log_epoch(self, epoch: int, scalars: dict) -> None:
        self.run.log({"epoch": epoch, **scalars})

    def log_step(self, step: int, scalars: dict) -> None:
        self.run.log({"global_step": step, **{f"step/{k}": v for k, v in scalars.items()}})

    def finish(self) -> None:
        self.run.finish()


def _plain(cfg) -> dict:
    """The yacs config as plain nested dicts (what wandb's config stores)."""
    return {k: _plain(v) if hasattr(v, "items") else v for k, v in cfg.items()}
