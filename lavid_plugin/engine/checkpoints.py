"""A run folder's files, written so that a crash at any point resumes to the uninterrupted result.

Per epoch the trainer writes the checkpoint first (``latest``, atomically; ``best`` and ``epoch_N``
as links to it) and the worklog block second; the block also travels inside the checkpoint. On
start, temporaries a killed process left behind are removed; on resume the worklog is cut back to
the checkpoint's epoch (a block written after it is dropped, a block the kill prevented is restored
from the checkpoint), so the worklog never lists an epoch whose checkpoint does not exist.

``LAVID_FAULT=<point>:<epoch>`` kills the process (SIGKILL) at a named point, for the
fault-injection tests: ``checkpoint-temp`` (the checkpoint's temporary file is half written),
``before-worklog`` (the checkpoint exists, its worklog block does not).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch

from ..errors import LavidError
from ..utils import atomic_link, atomic_path, fault_point, flatten, get_logger  # noqa: F401 (crash tests import it here)

RULE = "-" * 25
CHECKPOINT_KEYS = ("epoch", "model", "optimizer", "best_acc", "rng")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """The ``.<name>.<random>.tmp`` files of writes a killed process never finished."""
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def worklog_block(epoch: int, lr: float, log: dict, terms: dict) -> str:
    lines = [RULE, f"epoch: {epoch}", f"lr: {float(lr):.6f}"]
    lines += [f"{k}: {v:.2f}" for k, v in log.items()]
    lines += [f"{k}: {v:.4f}" for k, v in terms.items()]
    return os.linesep.join(lines + [RULE]) + os.linesep


def append_text(path: Path, text: str) -> None:
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        raise _disk_error(e, path) from None


def _disk_error(e: OSError, path: Path) -> LavidError:
    if e.errno == errno.ENOSPC:
        return LavidError(f"no space left on {path.parent} while writing {path.name}; the previous checkpoint is "
                          f"kept: free some space and run again with --resume")
    return LavidError(f"cannot write {path}: {e.strerror or e}")


def save_checkpoint(folder: Path, epoch: int, state: dict, student: dict, *, keep_epoch: bool, is_best: bool) -> None:
    """``latest`` and ``student_latest``; ``epoch_N``/``student_N`` and ``best``/``student_best`` as
    links to them. A full disk is one clear error and leaves the previous files as they were."""
    try:
        with atomic_path(folder / "latest") as tmp:
            torch.save(state, tmp)
            fault_point("checkpoint-temp", epoch)
        with atomic_path(folder / "student_latest") as tmp:
            torch.save(student, tmp)
        for keep, names in ((keep_epoch, (f"epoch_{epoch}", f"student_{epoch}")), (is_best, ("best", "student_best"))):
            if keep:
                atomic_link(folder / "latest", folder / names[0])
                atomic_link(folder / "student_latest", folder / names[1])
    except OSError as e:
        raise _disk_error(e, folder / "latest") from None


def load_checkpoint(path: Path) -> dict:
    """A checkpoint this trainer wrote, loaded with ``weights_only=True``; anything else (damaged,
    truncated, foreign, or a pickle that needs code) is one error naming the file."""
    if not path.is_file():
        raise LavidError(f"--resume: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle opcode, forbidden global, ...
        raise LavidError(f"{path}: cannot resume from it: it is damaged or not a checkpoint this trainer wrote "
                         f"({type(e).__name__}); start the run again without --resume, or restore the file") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise LavidError(f"{path}: not a checkpoint this trainer wrote (it lacks {missing}); start the run again "
                         f"without --resume")
    return state


def worklog_blocks(text: str) -> list[tuple[int, str]]:
    """``(epoch, text)`` of each complete ``-----`` ... ``-----`` block; a block cut short is left out."""
    blocks, cur = [], None
    for line in text.splitlines(keepends=True):
        if cur is None:
            cur = [line] if line.strip() == RULE else None
            continue
        cur.append(line)
        if line.strip() == RULE:
            epochs = [int(ln.split()[1]) for ln in cur if ln.strip().startswith("epoch: ")]
            if epochs:
                blocks.append((epochs[0], "".join(cur)))
            cur = None
    return blocks


def cut_worklog(path: Path, epoch: int, block: str | None) -> None:
    """The worklog as it was right after ``epoch``'s checkpoint: later blocks and a final ``best_acc``
    line dropped, ``epoch``'s block restored from ``block`` if the kill came before it was written."""
    text = path.read_text() if path.is_file() else ""
    kept = {}
    for e, b in worklog_blocks(text):
        if e <= epoch:
            kept[e] = b  # a rerun without this cut could have written an epoch twice: the last one counts
    if epoch not in kept and block:
        kept[epoch] = block
    out = "".join(kept[e] for e in sorted(kept))
    if out != text:
        with atomic_path(path) as tmp:
            tmp.write_text(out)


#: config keys that may change between a run and its resume without changing what is trained
RESUME_FREE_KEYS = frozenset({"LOG.PREFIX", "LOG.TENSORBOARD_FREQ", "LOG.SAVE_CHECKPOINT_FREQ", "LOG.WANDB",
                              "DATASET.ROOT", "DATASET.NUM_WORKERS", "DATASET.TEST.BATCH_SIZE", "SOLVER.EPOCHS",
                              "EXPERIMENT.NAME"})


#: keys whose values are files or folders: the same place spelled differently is no change (the files'
#: contents are compared through teachers.json)
_PATH_SUFFIXES = (".SIGNATURE", ".BANK", "_CKPT", ".SPLIT_FILE")


def _same(key: str, a, b) -> bool:
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and a and b and key.endswith(_PATH_SUFFIXES):
        return os.path.realpath(a) == os.path.realpath(b)
    return False


def check_resume(folder: Path, cfg_text: str, teachers: dict, force: bool = False) -> list:
    """Refuse to resume when the config or a precomputed teacher's content differs from what the run
    was started with (its ``config.yaml`` and ``teachers.json``), naming what changed."""
    import json

    import yaml

    changes = []
    saved_cfg, saved_teachers = folder / "config.yaml", folder / "teachers.json"
    if saved_cfg.is_file():
        from ..config import rename_deprecated_keys

        old = flatten(yaml.safe_load(saved_cfg.read_text()) or {})
        old = dict(zip(rename_deprecated_keys(old, str(saved_cfg)), old.values()))  # a run saved before a rename
        new = flatten(yaml.safe_load(cfg_text))
        changes += [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                    if k not in RESUME_FREE_KEYS and not _same(k, old.get(k), new.get(k))]
    if saved_teachers.is_file():
        old = json.loads(saved_teachers.read_text())
        changes += [f"{k}: the file's content changed (hash {str(old.get(k))[:12]} -> {str(teachers.get(k))[:12]})"
                    for k in sorted(set(old) | set(teachers)) if old.get(k) != teachers.get(k)]
    if changes and not force:
        shown = "\n  ".join(changes[:20])
        raise LavidError(f"--resume: {folder} was started with another setup; resuming would mix two runs:\n  {shown}\n"
                         f"start a new run (another EXPERIMENT.NAME), or pass --resume-force to continue anyway")
    for c in changes:
        get_logger().warning(f"resuming with a change (--resume-force): {c}")
    return changes
