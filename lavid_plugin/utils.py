"""Small shared helpers: atomic writes, content hashes, output-path checks and crash-test fault points."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import LavidError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file and a crash leaves the old file (or none) in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp (and some writers, e.g. safetensors) make 0600: give the mode a plain open() would
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` becomes a file with ``src``'s bytes, atomically: a hard link where the file system has
    them (no copy; a later atomic rewrite of ``src`` leaves ``dst`` as it was), else a copy."""
    import shutil

    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()



def save_tensor_file(path: str | os.PathLike, tensors: dict, meta: dict) -> Path:
    """Tensors as safetensors with ``meta`` as JSON under the header key ``lavid``, written atomically:
    the file format of every precomputed teacher (signatures, sample banks)."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: t.contiguous().cpu() for k, t in tensors.items()}, str(tmp),
                  metadata={"lavid": json.dumps(meta, ensure_ascii=False)})
    return path


def load_tensor_file(path: str | os.PathLike, what: str) -> tuple[dict, dict]:
    """``(tensors, meta)`` of a file :func:`save_tensor_file` wrote; nothing is unpickled. A missing
    or unreadable file, or metadata that is absent or not a JSON object, is one error naming ``path``."""
    from safetensors import SafetensorError, safe_open

    from .errors import LavidError

    path = Path(path)
    if not path.is_file():
        raise LavidError(f"{what} file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("lavid")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise LavidError(f"{path}: not a readable safetensors {what} ({e})") from None
    if raw is None:
        raise LavidError(f"{path}: safetensors file has no 'lavid' metadata: not a LaViD {what}")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LavidError(f"{path}: its 'lavid' metadata is not JSON ({e.msg}): not a LaViD {what}") from None
    if not isinstance(meta, dict):
        raise LavidError(f"{path}: its 'lavid' metadata is not a JSON object: not a LaViD {what}")
    return tensors, meta


def check_output_path(path, flag: str = "-o", *, folder: bool = False) -> None:
    """Before any work: an output whose place cannot exist (a parent is a regular file), that is a
    folder where a file is expected (or a file where a folder is), or whose nearest existing folder is
    not writable, is one error naming ``flag`` and the path."""
    path = Path(path)
    if not folder and path.is_dir():
        raise LavidError(f"{flag} {path}: is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise LavidError(f"{flag} {path}: is a file; give a folder")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise LavidError(f"{flag} {path}: cannot write there, {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise LavidError(f"{flag} {path}: cannot write there, {parent} is not writable")
            break


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested mapping (a config as YAML holds it) as ``{"NODE.KEY": value}``."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def fault_point(name: str, step: int) -> None:
    """Crash tests: ``LAVID_FAULT=<name>:<step>`` SIGKILLs the process here (no cleanup runs);
    ``<name>:<step>:TERM`` sends SIGTERM instead (what SLURM sends on a preemption)."""
    fault = os.environ.get("LAVID_FAULT", "")
    if fault == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == f"{name}:{step}:TERM":
        os.kill(os.getpid(), signal.SIGTERM)


# ------------------------------------------------------------------ logging
class _Console(logging.Handler):
    """INFO to stdout (status lines, as mdistiller prints them), WARNING and above to stderr; the
    streams are looked up at each record, so redirected or captured streams are honoured."""

    def emit(self, record):
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _Prefix(logging.Formatter):
    """``[lavid] message``, ``[lavid] warning: message``; a child logger ``lavid.bridge`` shows as
    ``[lavid bridge]``."""

    def format(self, record):
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"[{record.name.replace('.', ' ')}] {level}{record.getMessage()}"


def get_logger(name: str = "lavid") -> logging.Logger:
    """The ``lavid`` logger (or a child): INFO by default, to the console through one handler of its
    own; :func:`set_verbosity` (``--quiet`` / ``-v``) or the standard ``logging`` API change it."""
    root = logging.getLogger("lavid")
    if not any(isinstance(h, _Console) for h in root.handlers):
        handler = _Console()
        handler.setFormatter(_Prefix())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logging.getLogger(name)


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """``--quiet``: warnings and errors only; ``-v``: debug messages too."""
    get_logger().setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
