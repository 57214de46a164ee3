"""Stage 1b: a per-image teacher bank from a vision-language model, over a dataset's training split.

The images are the training split exactly as a training run reads it (the same ``--cfg``: same
dataset, same split file, same sample ids), decoded unaugmented; the processor resizes them.

Work is cut into chunks of images. Each finished chunk is written atomically to ``OUT.parts/``
next to a manifest of what is being extracted; a killed extraction started again with the same
arguments skips the finished chunks, and gives the same bank. The bank is written (atomically) only
when every chunk is done; then the parts are removed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import LavidError
from ..utils import atomic_write_json
from .bank import SampleBank, feature_name
from .vlm import VLMTeacher

FEATURE_DTYPE = torch.float16
FAULT_ENV = "teacher-chunk"  # LAVID_FAULT=teacher-chunk:<n> kills the process after chunk n is written


@dataclass
class TeacherImages:
    """A dataset's training images in sample order: ids (paths relative to ``DATASET.ROOT``), labels."""
    dataset: object  # the ImageList (``load(i)`` decodes image i, unaugmented)
    sample_ids: list
    labels: list
    class_names: list
    description: dict

    def __len__(self):
        return len(self.sample_ids)


@dataclass
class Job:
    """What one extraction computes: per image, ``prompts(i)``; per batch, ``run(images, prompts)`` ->
    named ``[B, ...]`` tensors; the bank holds them stacked per image. ``run_image(image, batch_size)``,
    where set, answers all of one image's prompts at once (``[P, ...]`` tensors) instead."""
    kind: str
    prompts: Callable[[int], list]
    run: Callable[[list, list], dict]
    provenance: dict
    run_image: Callable | None = None


def feature_job(teacher: VLMTeacher, images: TeacherImages, layers: Sequence[int], template: str) -> Job:
    layers = teacher.check_layers(layers)
    # one prompt per image, about its own class (the class name comes from the label): rendered once per class
    per_class = [teacher.render(template, **{"class": name}) for name in images.class_names]

    def run(imgs, texts):
        hs = teacher.hidden_states(imgs, texts, layers)
        out = {}
        for layer, (last, mean) in hs.items():
            out[feature_name("last", layer)] = last.to(FEATURE_DTYPE)
            out[feature_name("mean", layer)] = mean.to(FEATURE_DTYPE)
        return out

    return Job("features", lambda i: [per_class[images.labels[i]]], run, {"layers": layers, "template": template, "tokens": ["last", "mean"],
                                          "storage_dtype": "float16"})


def aspect_job(teacher: VLMTeacher, questions: Sequence[str], template: str, labels=("Yes", "No"), *,
               shared_prefix: bool = True, label_ids: str = "token") -> Job:
    """P(Yes) per (image, question). ``label_ids``: how Yes/No become token ids (see
    :func:`lavid_plugin.hf.answer_token_ids`; ``token`` is the authors' way), recorded in the provenance."""
    from ..hf import answer_token_ids

    questions = [q.strip() for q in questions]
    if not questions or any(not q for q in questions):
        raise LavidError("the aspect question list is empty or has an empty line")
    ids = answer_token_ids(teacher.tokenizer, list(labels), label_ids)
    texts = [teacher.render(template, question=q) for q in questions]

    def run(imgs, prompts):
        return {"p_yes": teacher.yes_probability(imgs, prompts, ids)}

    # every question about an image starts with the same text and the image: it goes through the model
    # once per image, and the questions continue from its cached keys and values
    split = teacher.split_at_image(texts) if shared_prefix else None

    def run_image(img, batch_size):
        return {"p_yes": teacher.yes_probability_shared(img, split[0], split[1], ids, batch_size)}

    return Job("aspects", lambda i: list(texts), run,
               {"template": template, "questions": questions, "labels": list(labels), "label_token_ids": ids,
                "label_ids": label_ids},
               run_image if split is not None else None)


class _Parts:
    """``OUT.parts/``: a manifest and one safetensors file per finished chunk."""

    def __init__(self, out: Path, manifest: dict):
        self.root = out.with_name(out.name + ".parts")
        self.manifest = manifest
        path = self.root / "manifest.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                old = None
            finished = list(self.root.glob("chunk-*.safetensors"))
            if old != manifest and finished:
                old = old or {}
                if old.get("model_fingerprint") != manifest.get("model_fingerprint"):
                    raise LavidError(f"{self.root}: its {len(finished)} finished chunk(s) come from another model than "
                                     f"{manifest.get('model')!r} holds now (the weight files' fingerprint changed "
                                     f"{str(old.get('model_fingerprint'))[:12]} -> "
                                     f"{str(manifest.get('model_fingerprint'))[:12]}); a bank must not mix two models: "
                                     f"delete that folder to start over, or write to another -o")
                diff = sorted(k for k in set(manifest) | set(old) if old.get(k) != manifest.get(k))
                raise LavidError(f"{self.root} holds the parts of a different extraction (differs in {diff}); "
                                 f"delete that folder to start over, or write to another -o")
            if old != manifest:  # nothing finished under the old manifest: start this extraction there
                atomic_write_json(path, manifest)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, manifest)

    def file(self, c: int) -> Path:
        return self.root / f"chunk-{c:06d}.safetensors"

    def load(self, c: int) -> dict | None:
        from safetensors.torch import load_file

        try:
            return load_file(str(self.file(c)))
        except Exception:  # absent or damaged: computed (again)
            return None

    def save(self, c: int, tensors: dict) -> None:
        from safetensors.torch import save_file

        from ..utils import atomic_path

        with atomic_path(self.file(c)) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def _load(images: TeacherImages, i: int):
    try:
        return images.dataset.load(i)
    except Exception as e:
        raise LavidError(f"cannot read training image {images.sample_ids[i]!r}: {type(e).__name__}: {e}") from None


def _chunk(job: Job, images: TeacherImages, idx: Sequence[int], batch_size: int, lengths, bar) -> dict:
    """Every prompt of the images ``idx``, longest first in batches; results back in image order."""
    if job.run_image is not None:
        outs = []
        for i in idx:
            outs.append(job.run_image(_load(images, i), batch_size))
            bar.update(len(job.prompts(i)))
        return {n: torch.stack([o[n] for o in outs]) for n in outs[0]}
    items = [(i, j, p) for i in idx for j, p in enumerate(job.prompts(i))]
    order = sorted(range(len(items)), key=lambda k: -lengths(items[k][2]))
    per_image = len(items) // max(len(idx), 1)
    pos = {i: n for n, i in enumerate(idx)}
    result: dict[str, torch.Tensor] = {}
    for s in range(0, len(order), batch_size):
        batch = [items[k] for k in order[s:s + batch_size]]
        decoded = {}
        for i, _, _ in batch:
            if i not in decoded:
                decoded[i] = _load(images, i)
        out = job.run([decoded[i] for i, _, _ in batch], [p for _, _, p in batch])
        for name, t in out.items():
            if name not in result:
                result[name] = torch.zeros(len(idx), per_image, *t.shape[1:], dtype=t.dtype)
            for row, (i, j, _) in enumerate(batch):
                result[name][pos[i], j] = t[row]
        bar.update(len(batch))
    # features: one prompt per image -> [N, D]; aspects: [N, A]
    return {n: (t[:, 0] if job.kind == "features" else t) for n, t in result.items()}


def extract_bank(teacher: VLMTeacher, images: TeacherImages, job: Job, out: str | Path, *, batch_size: int = 8,
                 chunk_size: int = 256, progress: bool = True) -> SampleBank:
    """Run ``job`` over every image, resuming from ``OUT.parts/``; write and return the bank."""
    from tqdm import tqdm

    from ..utils import fault_point

    if batch_size < 1 or chunk_size < 1:
        raise LavidError(f"--batch-size and --chunk-size must be >= 1, got {batch_size}, {chunk_size}")
    if not len(images):
        raise LavidError("the training split has no images")
    out = Path(out)
    prov = {"kind": job.kind, **teacher.provenance(), **job.provenance, "dataset": images.description}
    manifest = {k: v for k, v in prov.items() if k != "library_versions"}
    manifest["chunk_size"] = chunk_size
    parts = _Parts(out, manifest)
    n = len(images)
    chunks = [list(range(s, min(s + chunk_size, n))) for s in range(0, n, chunk_size)]
    cache: dict = {}
    lengths = lambda p: cache.setdefault(p, teacher.prompt_length(p))  # noqa: E731
    total = sum(len(job.prompts(i)) for i in range(n))
    done: dict[int, dict] = {}
    for c in range(len(chunks)):
        got = parts.load(c)
        if got is not None:
            done[c] = got
    try:
        with tqdm(total=total, unit="prompt", desc=f"teacher {job.kind}", disable=not progress,
                  dynamic_ncols=True) as bar:
            bar.update(sum(len(job.prompts(i)) for c in done for i in chunks[c]))
            for c, idx in enumerate(chunks):
                if c in done:
                    continue
                done[c] = _chunk(job, images, idx, batch_size, lengths, bar)
                parts.save(c, done[c])
                fault_point(FAULT_ENV, c)
    except BaseException:
        if not done:  # nothing finished: leave no parts folder behind (a rerun with other flags starts clean)
            shutil.rmtree(parts.root, ignore_errors=True)
        raise
    tensors = {name: torch.cat([done[c][name] for c in range(len(chunks))]) for name in done[0]}
    bank = SampleBank(images.sample_ids, tensors, provenance=prov, source=f"extraction for {out}")
    bank.save(out)
    shutil.rmtree(parts.root, ignore_errors=True)
    return bank
