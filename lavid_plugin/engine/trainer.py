"""One trainer for CPU or CUDA, single process or DDP under torchrun.

``run_step`` is the seam (data -> loss dict -> sum -> backward -> step); everything else
(evaluation, logging, checkpoints, resume) is around it. Batches are unpacked by their shape, not by
distiller name: a ``(weak, strong)`` image pair becomes ``image_weak=``/``image_strong=``, a fourth
element becomes CRD's ``contrastive_index=``.

Output, as mdistiller writes it, under ``LOG.PREFIX/<project>/<name>/``: ``worklog.txt``,
``latest``, ``student_latest``, ``best``, ``student_best``, ``epoch_N``/``student_N`` every
``LOG.SAVE_CHECKPOINT_FREQ`` epochs, and tensorboard events in ``train.events/``. Checkpoints are
written atomically; ``latest`` also holds the RNG states so ``--resume`` continues exactly.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import check_bad_images
from ..data.transforms import to_model_input
from .evaluation import StepSums, accuracy, evaluate  # noqa: F401 (evaluate: re-exported)
from ..errors import LavidError
from ..utils import get_logger
from .checkpoints import (append_text, cut_worklog, fault_point, load_checkpoint, remove_stale_temporaries,
                          save_checkpoint, worklog_block)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    if seed < 0:
        return
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def unwrap(model):
    return model.module if hasattr(model, "module") else model


SELECT_MODES = ("best_test_acc", "best_val_loss", "final")


@dataclass
class RunSpec:
    """One training process: the run's folder (``LOG.PREFIX/<name>``), its config, this process's
    place under torchrun, the loaders' RNG, and whether to show progress."""
    name: str
    cfg: object
    device: str = "cpu"
    rank: int = 0
    world: int = 1
    generator: object = None
    progress: bool | str = True  # a bar on a terminal, else one line per epoch; "lines": always lines


class Trainer:
    """mdistiller's train loop: per step data -> losses -> sum -> backward -> step, per epoch
    evaluate, checkpoint, worklog. ``data`` is the run's :class:`~.build.RunData` (loaders, splits)."""

    @staticmethod
    def check_cfg(cfg) -> None:
        """Refuse ``LOG``/``SOLVER`` settings the loop cannot honour, before anything is written."""
        from .solver import check_solver

        if cfg.SOLVER.EPOCHS < 1:
            raise LavidError(f"SOLVER.EPOCHS must be at least 1, got {cfg.SOLVER.EPOCHS}")
        if cfg.LOG.SELECT not in SELECT_MODES:
            raise LavidError(f"LOG.SELECT must be one of {SELECT_MODES}, got {cfg.LOG.SELECT!r}")
        if cfg.LOG.EVAL_FREQ < 1:
            raise LavidError(f"LOG.EVAL_FREQ must be at least 1, got {cfg.LOG.EVAL_FREQ}")
        check_solver(cfg)

    def __init__(self, spec: RunSpec, distiller, data):
        cfg, device, rank, world = spec.cfg, spec.device, spec.rank, spec.world
        experiment_name, generator, progress = spec.name, spec.generator, spec.progress
        train_loader, val_loader = data.train_loader, data.val_loader
        select_loader, group_names = data.select_loader, data.splits.group_names
        self.check_cfg(cfg)
        self.cfg, self.distiller = cfg, distiller
        self.group_names = group_names
        self.train_loader, self.val_loader, self.select_loader = train_loader, val_loader, select_loader
        self.best_val_loss = float("inf")
        self.device, self.rank, self.world = torch.device(device), rank, world
        interactive = sys.stderr.isatty()
        self.generator = generator
        # a terminal gets the progress bar; a log file one line per epoch (not thousands of \r updates)
        # progress="lines": one line per epoch even on a terminal (lavid demo)
        self.progress = progress is True and rank == 0 and interactive
        self.epoch_lines = bool(progress) and rank == 0 and (progress == "lines" or not interactive)
        self.last_saved_epoch = 0
        self.amp = self.device.type == "cuda" and cfg.SOLVER.AMP
        self.optimizer = self.init_optimizer(cfg)
        self.decoder = None
        if cfg.DATASET.DECODE_ON_DEVICE:
            from ..data import image_list_of
            from ..data.device_decode import DeviceDecoder

            ds = image_list_of(train_loader.dataset)
            self.decoder = DeviceDecoder(cfg.DATASET.IMAGE_SIZE, device, path_of=lambda i: ds.samples[i][0])
        self.best_acc = -1.0
        self.log_path = Path(cfg.LOG.PREFIX) / experiment_name
        self.tf_writer = None
        self.wandb = None  # a WandbRun (LOG.WANDB), attached by the launcher on rank 0
        if rank == 0:
            self.log_path.mkdir(parents=True, exist_ok=True)
            for p in remove_stale_temporaries(self.log_path):
                get_logger().warning(f"removed {p}, left by an interrupted write")
        self.global_step = 0

    # ------------------------------------------------------------------ pieces
    def init_optimizer(self, cfg):
        from .solver import build_optimizer

        return build_optimizer(cfg, unwrap(self.distiller).get_learnable_parameters())

    def adjust_learning_rate(self, epoch):
        """``SOLVER.SCHEDULER``'s learning rate for ``epoch`` (see :mod:`.solver`)."""
        from .solver import lr_at

        lr = lr_at(self.cfg, epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_device(self, x):
        if isinstance(x, (list, tuple)):
            return type(x)(self.to_device(v) for v in x)
        x = to_model_input(x.to(self.device, non_blocking=True))  # uint8 images: normalised here
        if self.amp and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def unpack(self, batch):
        """``(image, target, index[, contrastive_index])`` -> distiller kwargs, target."""
        image, target, index, *rest = batch
        kwargs = {}
        if self.decoder is not None:  # DATASET.DECODE_ON_DEVICE: file bytes, decoded and augmented here
            kwargs["image"] = self.decoder(image, index)
            if self.amp:
                kwargs["image"] = kwargs["image"].contiguous(memory_format=torch.channels_last)
        elif isinstance(image, (list, tuple)):
            kwargs["image_weak"], kwargs["image_strong"] = self.to_device(image[0]), self.to_device(image[1])
        else:
            kwargs["image"] = self.to_device(image)
        kwargs["index"] = self.to_device(index)  # LaViD's per-sample signature rows (Waterbirds), CRD
        if rest:
            kwargs["contrastive_index"] = self.to_device(rest[0])
        target = self.to_device(target)
        return kwargs, target

    def run_step(self, batch, epoch):
        kwargs, target = self.unpack(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            preds, losses = self.distiller(target=target, epoch=epoch, **kwargs)
        loss = sum(v.float().mean() for v in losses.values())
        loss.backward()  # no host synchronisation in the step: losses are checked when read (read_back)
        self.optimizer.step()
        return preds, {k: v.detach().float().mean() for k, v in losses.items()}, loss.detach(), target

    # ------------------------------------------------------------------ loops
    def train_epoch(self, epoch):
        lr = self.adjust_learning_rate(epoch)
        sums, window = StepSums(), StepSums()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # reshuffle per epoch under DDP
        self.distiller.train()
        from tqdm import tqdm

        bar = tqdm(total=len(self.train_loader), desc=f"epoch {epoch}", disable=not self.progress, dynamic_ncols=True,
                   leave=False)
        t0, seen = time.perf_counter(), 0
        max_bad, bad = self.cfg.DATASET.MAX_BAD_FRACTION, 0
        for batch in self.train_loader:
            # the batch is loaded, so its unreadable images are marked: stop here if too many failed
            bad = check_bad_images(self.train_loader.dataset, max_bad, "training")
            if batch is None:  # every image of the batch was unreadable
                continue
            preds, losses, loss, target = self.run_step(batch, epoch)
            n = target.shape[0]
            seen += n
            acc1, acc5 = accuracy(preds.float(), target, topk=(1, 5))
            for s in (sums, window):
                s.add({"loss": loss, "top1": acc1, "top5": acc5, **losses}, n)
            self.global_step += 1
            if self.global_step % self.cfg.LOG.TENSORBOARD_FREQ == 0:
                self.read_back(window, epoch, bar, seen / (time.perf_counter() - t0))
                window = StepSums()
            bar.update()
        if window.count:
            self.read_back(window, epoch, bar, seen / max(time.perf_counter() - t0, 1e-9))
        bar.close()
        self.check_finite_weights(epoch)  # the last step may have broken them: before any evaluation or save
        means = sums.means(self.world)  # every rank's share of the global batches, not rank 0's alone
        terms = {k: v for k, v in means.items() if k not in ("loss", "top1", "top5")}
        log = OrderedDict(train_acc=means.get("top1", 0.0), train_loss=means.get("loss", 0.0))
        log.update(self.evaluate())
        if self.select_loader is not None and self.checks_val(epoch):  # any LOG.SELECT: the report may pick it
            log.update((k.replace("test_", "val_", 1), v) for k, v in evaluate(
                self.distiller, self.select_loader, self.device, autocast=self.autocast, world=self.world,
                group_names=self.group_names).items())
        bad_val = check_bad_images(self.val_loader.dataset, max_bad, "test")
        if bad or bad_val:
            log["bad_images"] = bad + bad_val
        if self.rank == 0:
            block = worklog_block(epoch, lr, log, terms)
            self.save(epoch, log, block)  # the checkpoint first, then the worklog line
            fault_point("before-worklog", epoch)
            append_text(self.log_path / "worklog.txt", block)
            # seconds per epoch and processes, for the device-hours `lavid status` adds up (kept out of the worklog,
            # which a resumed run must reproduce byte for byte)
            append_text(self.log_path / "epoch_times.tsv",
                        f"{epoch}\t{time.perf_counter() - t0:.1f}\t{self.world}\t{self.device.type}\n")
            self.log(lr, epoch, log, terms)
            if self.epoch_lines:
                get_logger().info(f"epoch {epoch}/{self.cfg.SOLVER.EPOCHS}: train_loss {log['train_loss']:.4f} "
                                  f"test_acc {log['test_acc']:.2f} ({seen / (time.perf_counter() - t0):.1f} img/s)")
        return log

    def read_back(self, window: StepSums, epoch: int, bar, img_s: float) -> None:
        """Every LOG.TENSORBOARD_FREQ steps and at the epoch's end: the steps' values read back once
        (the only synchronisation of the loop), checked, written as step scalars, shown on the bar."""
        means = window.means()
        bad = {k: v for k, v in means.items() if not math.isfinite(v)}
        if bad:
            raise LavidError(f"non-finite loss at epoch {epoch}, by step {self.global_step}: {bad}; stopping. "
                             f"{self.last_checkpoint()}")
        if self.rank == 0:
            scalars = {k: v for k, v in means.items() if k not in ("top1", "top5")}
            for k, v in scalars.items():
                self.writer().add_scalar(f"step/{k}", v, self.global_step)
            if self.wandb is not None:
                self.wandb.log_step(self.global_step, scalars)
        bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4f}", img_s=f"{img_s:.1f}")

    def check_finite_weights(self, epoch):
        bad = [n for n, p in unwrap(self.distiller).named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise LavidError(f"non-finite weights after epoch {epoch} ({bad[:3]}{' ...' if len(bad) > 3 else ''}); "
                             f"stopping before evaluating or saving. {self.last_checkpoint()}")

    def last_checkpoint(self) -> str:
        if self.last_saved_epoch:
            return f"The last checkpoint is {self.log_path / 'latest'} (epoch {self.last_saved_epoch})."
        return "No checkpoint was written for this run yet."

    def evaluate(self):
        return evaluate(self.distiller, self.val_loader, self.device, autocast=self.autocast, world=self.world,
                        group_names=self.group_names)

    # ------------------------------------------------------------------ outputs
    def writer(self):
        if self.tf_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.tf_writer = SummaryWriter(str(self.log_path / "train.events"))
        return self.tf_writer

    def log(self, lr, epoch, log_dict, terms):
        """Tensorboard; the worklog block is written by :meth:`train_epoch`, after the checkpoint."""
        scalars = {"lr": lr, **log_dict, **{f"train/{k}": v for k, v in terms.items()}}
        w = self.writer()
        for k, v in scalars.items():
            w.add_scalar(k, v, epoch)
        w.flush()
        if self.wandb is not None:
            self.wandb.log_epoch(epoch, scalars)

    def state(self, epoch):
        return {"epoch": epoch, "model": unwrap(self.distiller).state_dict(), "optimizer": self.optimizer.state_dict(),
                "best_acc": self.best_acc, "lr": self.optimizer.param_groups[0]["lr"], "rng": rng_state(),
                "generator": self.generator.get_state() if self.generator is not None else None,
                "global_step": self.global_step}

    def checks_val(self, epoch) -> bool:
        """best_val_loss looks at the validation loss every LOG.EVAL_FREQ epochs, and at the last."""
        return epoch % self.cfg.LOG.EVAL_FREQ == 0 or epoch == self.cfg.SOLVER.EPOCHS

    def is_best(self, epoch, log) -> bool:
        """Whether this epoch becomes ``best`` under LOG.SELECT (``best_acc`` stays mdistiller's)."""
        mode = self.cfg.LOG.SELECT
        if mode == "final":
            return True
        if mode == "best_test_acc":
            return log["test_acc"] >= self.best_acc
        val = log.get("val_loss", log["test_loss"])  # the authors' validation set is the test set but for Waterbirds
        if self.checks_val(epoch) and val <= self.best_val_loss:
            self.best_val_loss = val
            return True
        return False

    def save(self, epoch, log, block: str = ""):
        is_best = self.is_best(epoch, log)
        self.best_acc = max(self.best_acc, log["test_acc"])
        state = {**self.state(epoch), "worklog": block, "best_val_loss": self.best_val_loss}
        save_checkpoint(self.log_path, epoch, state, {"model": unwrap(self.distiller).student.state_dict()},
                        keep_epoch=epoch % self.cfg.LOG.SAVE_CHECKPOINT_FREQ == 0, is_best=is_best)
        self.last_saved_epoch = epoch

    def resume(self):
        path = self.log_path / "latest"
        state = load_checkpoint(path)
        try:
            unwrap(self.distiller).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise LavidError(f"{path}: does not fit this run's model or optimizer "
                             f"({str(e).splitlines()[0][:300]}); was it written by another config?") from None
        self.best_acc = state["best_acc"]
        self.best_val_loss = state.get("best_val_loss", float("inf"))
        self.global_step = state.get("global_step", 0)
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])
        self.last_saved_epoch = state["epoch"]
        if self.rank == 0:
            cut_worklog(self.log_path / "worklog.txt", state["epoch"], state.get("worklog"))
        return state["epoch"] + 1

    def train(self, resume=False, stop_after_epoch=None, start_epoch=None):
        """Epochs from ``start_epoch`` (what :meth:`resume` returned), or 1, or the checkpoint's next."""
        epoch = start_epoch if start_epoch is not None else (self.resume() if resume else 1)
        while epoch <= self.cfg.SOLVER.EPOCHS:
            self.reseed(epoch)
            self.train_epoch(epoch)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                if self.wandb is not None:
                    self.wandb.finish()
                return
            epoch += 1
        if self.rank == 0:
            append_text(self.log_path / "worklog.txt", "best_acc\t{:.2f}".format(float(self.best_acc)) + os.linesep)
            if self.tf_writer is not None:
                self.tf_writer.close()
        if self.wandb is not None:
            self.wandb.finish()

    def reseed(self, epoch):
        """Each epoch's shuffling and augmentation depend on (seed, epoch, rank) only, so a resumed run
        replays exactly what the uninterrupted one would have done."""
        seed = self.cfg.EXPERIMENT.SEED
        if seed < 0:
            return
        s = seed * 100003 + epoch * 1009 + self.rank
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s % 2**32)
        if self.generator is not None:  # alike on every rank: the ranks share one permutation of the data
            self.generator.manual_seed(s - self.rank)
