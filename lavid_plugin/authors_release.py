"""The LaViD authors' released files (github.com/lliangthomas/lavid), fetched at a pinned commit.

``assets/authors_release.json`` (written by ``scripts/make_release_manifest.py``) lists every released
question file, answer file, per-image bank and class list at one commit, each with its git blob id and,
where known, its sha256. :func:`fetch` returns a verified local copy of one of them, from:

* a clone of that repository (``--from DIR``): read in place, no network;
* the web (``--url``, default raw.githubusercontent.com at the pinned commit), into a cache
  (``$LAVID_CACHE``, else ``$XDG_CACHE_HOME/lavid``, else ``~/.cache/lavid``) under ``released/<commit>/``.

A file whose content does not match its pin is refused, naming the file and both hashes; a download
is written to a temporary name and only renamed into the cache once it verifies, so a refused or
interrupted download leaves nothing behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import LavidError

MANIFEST = Path(__file__).resolve().parent / "assets" / "authors_release.json"
#: the plugin's dataset names (DATASET.TYPE) -> the authors' folder under questions/
DATASET_FOLDERS = {"cub": "cub200", "caltech101": "caltech101", "flowers": "flowers", "aircraft": "fgvc_aircraft",
                   "pets": "oxfordpets", "cars": "stanfordcars", "waterbirds": "waterbird"}
#: what the paper's main runs read: Qwen2.5-7B's answers to GPT-4o's 50 x 5 questions, InternVL2's aspects
DEFAULT_LLM, DEFAULT_QUESTIONS, DEFAULT_BANK_MODEL = "qwen2.5-7b", "chat_50-5", "internvl2"
_CHUNK = 1 << 20


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@dataclass(frozen=True)
class Dataset:
    """A dataset as the plugin names it (``folder``: ``cub``, ``imagenet_bird``) and as the release does
    (``release_dir``: ``questions/cub200``, ``questions/imagenet/bird``)."""
    folder: str
    release_dir: str
    group: str = ""

    @property
    def answers_dir(self) -> str:
        """Where the answer files are: ``logits/`` below the dataset's folder, beside the questions for a group."""
        return self.release_dir if self.group else f"{self.release_dir}/logits"

    @property
    def signature_dir(self) -> str:
        """The plugin's ``signatures/<dir>`` for it (what the configs read)."""
        return f"imagenet/{self.group}" if self.group else self.folder


def dataset(name: str) -> Dataset:
    """``cub`` / ``cub200``, ``imagenet_bird`` / ``bird`` / ``imagenet/bird``, ...: the dataset, or an error
    listing the released ones."""
    key = name.strip().lower().replace("-", "_")
    authors = {v: k for k, v in DATASET_FOLDERS.items()}
    if key in DATASET_FOLDERS or key in authors:
        ours = key if key in DATASET_FOLDERS else authors[key]
        return Dataset(ours, f"questions/{DATASET_FOLDERS[ours]}")
    group = key.removeprefix("imagenet_").removeprefix("imagenet/")
    if group in imagenet_groups():
        return Dataset(f"imagenet_{group}", f"questions/imagenet/{group}", group)
    raise LavidError(f"no released files for dataset {name!r}; the authors released {sorted(DATASET_FOLDERS)} "
                     f"and the ImageNet groups {imagenet_groups()}")


def imagenet_groups() -> list[str]:
    """The ImageNet WordNet groups with a released signature (``questions/imagenet/<group>/``)."""
    return sorted({p.split("/")[2] for p in manifest()["files"]
                   if p.startswith("questions/imagenet/") and p.count("/") == 3 and p.split("/")[2] != "logits"})


def released_paths(prefix: str, suffix: str = "") -> list[str]:
    """Paths of the release directly under ``prefix`` (a folder), ending in ``suffix``."""
    return [p for p in manifest()["files"] if p.startswith(prefix + "/") and "/" not in p[len(prefix) + 1:]
            and p.endswith(suffix)]


def lookup(prefix: str, name: str) -> str | None:
    """The released path ``prefix/name``, matched without regard to case (the authors spell ``qwen2.5-7B`` and
    ``qwen2.5-7b``), or None."""
    exact = f"{prefix}/{name}"
    if exact in manifest()["files"]:
        return exact
    hits = [p for p in released_paths(prefix) if p.lower() == exact.lower()]
    return hits[0] if len(hits) == 1 else None


def find(prefix: str, name: str, what: str) -> str:
    """:func:`lookup`, or an error listing what there is."""
    hit = lookup(prefix, name)
    if hit is not None:
        return hit
    there = sorted(Path(p).name for p in released_paths(prefix))
    raise LavidError(f"the authors released no {what} {name!r} in {prefix}/ (commit {manifest()['commit'][:12]}); "
                     f"there: {there}")


def signature_paths(ds: Dataset, llm: str, questions: str) -> tuple[str, str | None]:
    """``(answer file, question file or None)`` of ``<llm>_<questions>``; some answer files (Fig. 6's Q = 60)
    were released without their question file."""
    answers = lookup(ds.answers_dir, f"{llm}_{questions}.json")
    if answers is None and llm.lower() == DEFAULT_LLM:
        # files of the authors' first runs name Qwen2.5-7B "qwen2.5" (qwen2.5_chato3_50.json: Table 6's o3 questions)
        answers = lookup(ds.answers_dir, f"qwen2.5_{questions}.json")
    if answers is None:
        find(ds.answers_dir, f"{llm}_{questions}.json", "answer file")  # the error, listing what there is
    return answers, question_path(ds, questions)


def question_path(ds: Dataset, questions: str) -> str | None:
    """The released question file ``<questions>.txt`` of a dataset, or None."""
    return lookup(ds.release_dir, f"{questions}.txt")


def bank_path(ds: Dataset, model: str = DEFAULT_BANK_MODEL) -> str:
    """The per-image aspect bank ``<model>_img.json`` (JSON where both it and JSONL were released)."""
    for name in (f"{model}_img.json", f"{model}_img.jsonl"):
        hit = lookup(ds.answers_dir, name)
        if hit is not None:
            return hit
    banks = sorted(Path(p).name for p in released_paths(ds.answers_dir) if "_img." in p)
    raise LavidError(f"the authors released no per-image bank {model}_img.json(l) for {ds.folder} "
                     f"({ds.answers_dir}/, commit {manifest()['commit'][:12]}); banks there: {banks or 'none'}")


def cache_root() -> Path:
    if os.environ.get("LAVID_CACHE"):
        return Path(os.environ["LAVID_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lavid"


def pin(path: str) -> dict:
    try:
        return manifest()["files"][path]
    except KeyError:
        raise LavidError(f"{path} is not one of the authors' released files") from None


def _digests(file: Path) -> tuple[str, str]:
    """``(sha256, git blob id)`` of a file's content."""
    size = file.stat().st_size
    sha, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest()


def verify(path: str, file: Path, origin: str) -> dict:
    """Refuse ``file`` unless its content is the pinned one of ``path``; returns what was checked."""
    want = pin(path)
    sha, blob = _digests(file)
    if want.get("sha256"):
        ok, checked = sha == want["sha256"], {"sha256": sha}
        expected = f"sha256 {want['sha256']}"
        got = f"sha256 {sha}"
    else:  # the manifest's clone lacked this file's content: its git blob id (fixed by the commit) is the pin
        ok, checked = blob == want["git_blob"], {"git_blob": blob}
        expected, got = f"git blob {want['git_blob']}", f"git blob {blob}"
    if not ok:
        raise LavidError(f"{origin}: checksum mismatch for the authors' {path}: expected {expected} (commit "
                         f"{manifest()['commit'][:12]}), got {got}; refusing it (another commit, a changed or "
                         f"damaged file)")
    return {"repository": manifest()["repository"], "commit": manifest()["commit"], "path": path, **checked}


def fetch(path: str, *, clone: str | Path | None = None, url: str | None = None,
          cache: str | Path | None = None, log=print) -> tuple[Path, dict]:
    """A verified local copy of the released ``path`` and its provenance (repository, commit, path, hash)."""
    pin(path)
    if clone is not None:
        file = Path(clone) / path
        if not file.is_file():
            raise LavidError(f"--from {clone}: no file {path} (is it a clone of github.com/"
                             f"{manifest()['repository']}?)")
        return file, verify(path, file, str(file))
    target = Path(cache or cache_root()) / "released" / manifest()["commit"] / path
    if target.is_file():
        try:
            return target, verify(path, target, f"{target} (cached)")
        except LavidError as e:  # a damaged cache entry is fetched again
            log(f"{e}; downloading it again")
            target.unlink()
    base = (url or os.environ.get("LAVID_RELEASE_URL") or manifest()["url"]).rstrip("/") + "/"
    source = base + path
    log(f"downloading {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source, timeout=60) as resp:
            shutil.copyfileobj(resp, out, _CHUNK)
        prov = verify(path, Path(tmp), source)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as e:
        raise LavidError(f"cannot download {source}: {getattr(e, 'reason', None) or e} (no network? --from DIR reads "
                         f"a clone of github.com/{manifest()['repository']} instead)") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _remove_empty(target.parent, Path(cache or cache_root()))
    return target, prov


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove the cache folders a refused download created (up to ``root``, included), so it leaves nothing."""
    while folder != root.parent and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def add_source_arguments(p) -> None:
    """``--from`` / ``--url`` / ``--cache`` of the ``released`` commands."""
    p.add_argument("--from", dest="clone", metavar="DIR", help=f"read a clone of github.com/{manifest()['repository']} "
                   "instead of downloading (no network; its files must be those of the pinned commit)")
    p.add_argument("--url", help="download from this mirror of the repository at the pinned commit (default: "
                   "$LAVID_RELEASE_URL, else raw.githubusercontent.com)")
    p.add_argument("--cache", help="download cache (default: $LAVID_CACHE, else ~/.cache/lavid)")


def source_of(args) -> dict:
    return {"clone": args.clone, "url": args.url, "cache": args.cache}
