"""The LLM signature: LaViD's teacher-free teacher.

A signature holds, for each class ``k`` and question ``q``, the answering model's distribution over
the question's ``M_q`` options. Option counts may differ per question, so everything is stored flat
(``[K, sum_q M_q]``) with ``offsets`` (``[Q + 1]``) marking where each question starts.

As an ``nn.Module`` it is a lookup table: ``signature(target) -> T_target`` (``[B, sum M]``), which
is what :class:`lavid_plugin.distillers.LAVID.LaViD` regresses onto.

Files are safetensors: tensors ``probs``, ``logits`` (NaN where unknown, e.g. imported files),
``offsets``; the header metadata ``lavid`` is JSON with class names, questions and provenance.
Loading unpickles nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import LavidError
from ..utils import load_tensor_file, save_tensor_file
from .questions import Question

FORMAT_VERSION = 1


def normalize_class_name(name: str) -> str:
    """Case, underscores, numeric prefixes (``001.``) and spacing folded: for alignment only."""
    name = re.sub(r"^\s*\d+[.\s_-]+", "", name)
    name = name.replace("_", " ").replace("-", " ")
    return " ".join(name.lower().split())


@dataclass
class AlignmentReport:
    mapping: list[tuple[str, str]]  # (dataset name, signature name) where they differ

    def format(self) -> str:
        if not self.mapping:
            return "all class names matched exactly"
        return "\n".join(f"  {d!r} <- {s!r}" for d, s in self.mapping)


class LLMSignature(nn.Module):
    ddp_local = True  # the same on every rank: DDP need not broadcast its buffers

    def __init__(
        self,
        class_names: Sequence[str],
        probs: torch.Tensor,
        offsets: Sequence[int] | torch.Tensor,
        *,
        logits: torch.Tensor | None = None,
        questions: Sequence[Question] | None = None,
        provenance: dict | None = None,
        source: str = "signature",
    ):
        super().__init__()
        class_names = list(class_names)
        check_unique_class_names(class_names, source)
        probs = torch.as_tensor(probs, dtype=torch.float32)
        offsets = torch.as_tensor(offsets, dtype=torch.int64)
        if probs.ndim != 2 or probs.shape[0] != len(class_names):
            raise LavidError(f"{source}: probs must be [K={len(class_names)}, sum M], got {tuple(probs.shape)}")
        if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != probs.shape[1] or (offsets.diff() <= 0).any():
            raise LavidError(f"{source}: offsets {offsets.tolist()} do not tile {probs.shape[1]} columns")
        check_values(probs, offsets, class_names, (provenance or {}).get("kind"), source)
        if logits is None:
            logits = torch.full_like(probs, float("nan"))
        logits = torch.as_tensor(logits, dtype=torch.float32)
        if logits.shape != probs.shape:
            raise LavidError(f"signature logits shape {tuple(logits.shape)} != probs shape {tuple(probs.shape)}")
        if questions is not None:
            questions = list(questions)
            counts = [q.num_options for q in questions]
            if counts != offsets.diff().tolist():
                raise LavidError(
                    f"signature has {len(offsets) - 1} questions with option counts {offsets.diff().tolist()}, "
                    f"but the questions given have {len(questions)} with counts {counts}"
                )
        self.class_names = class_names
        self.questions = questions
        self.provenance = dict(provenance or {})
        self.register_buffer("probs", probs, persistent=False)
        self.register_buffer("logits", logits, persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)

    @classmethod
    def from_option_logits(cls, class_names, logits: torch.Tensor, questions: Sequence[Question], *,
                           temperature: float = 1.0, provenance: dict | None = None) -> "LLMSignature":
        """Per-question softmax of raw option logits ``[K, sum M]`` at ``temperature``."""
        offsets = offsets_from_counts(q.num_options for q in questions)
        probs = torch.cat([torch.softmax(logits[:, offsets[q]:offsets[q + 1]] / temperature, dim=-1)
                           for q in range(len(offsets) - 1)], dim=1)
        return cls(list(class_names), probs, offsets, logits=logits, questions=questions, provenance=provenance)

    # ------------------------------------------------------------------ shape
    @property
    def targets(self) -> torch.Tensor:
        """Deprecated name of :attr:`probs` (the per-class rows LaViD regresses)."""
        return self.probs

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_questions(self) -> int:
        return len(self.offsets) - 1

    @property
    def option_counts(self) -> list[int]:
        return self.offsets.diff().tolist()

    @property
    def dim(self) -> int:
        """Q*M (sum of option counts): the LaViD head's output size."""
        return int(self.probs.shape[1])

    def question_slice(self, q: int) -> slice:
        return slice(int(self.offsets[q]), int(self.offsets[q + 1]))

    def class_matrix(self, name_or_index) -> list[list[float]]:
        """One class's answers as a list of per-question probability lists (the paper's JSON rows)."""
        k = self.class_names.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        row = self.probs[k]
        return [row[self.question_slice(q)].tolist() for q in range(self.num_questions)]

    # ------------------------------------------------------------------ teacher
    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return self.probs[target]

    # ------------------------------------------------------------------ alignment
    def align(self, dataset_class_names: Sequence[str], *, normalize: bool = False,
              allow_extra: bool = False, aliases: dict | None = None) -> "LLMSignature":
        """Reorder rows to the dataset's label order, by class name (never by position).

        A dataset class the signature lacks is an error naming it; so is a signature class the
        dataset lacks, unless ``allow_extra``. ``normalize`` folds case, underscores and numeric
        prefixes (``001.Black_footed_Albatross``); the mapping is kept in ``self.alignment``.
        ``aliases`` (dataset name -> other names, e.g. ImageNet's WordNet lemmas) are tried, with
        case, apostrophes and the order of ``a / b`` alternatives folded, for a dataset class whose
        own name the signature lacks; one alias matching two signature rows is an error. Two dataset
        classes may share one row (the released ImageNet files name two classes "missile").
        """
        dataset_class_names = list(dataset_class_names)
        check_unique_class_names(dataset_class_names, "dataset")
        key = normalize_class_name if normalize else (lambda s: s)
        index: dict[str, int] = {}
        for i, n in enumerate(self.class_names):
            k = key(n)
            if k in index:
                raise LavidError(
                    f"signature classes {self.class_names[index[k]]!r} and {n!r} are the same after normalisation"
                )
            index[k] = i
        order, missing, mapping = [], [], []
        folded = {}
        for i, n in enumerate(self.class_names):
            folded.setdefault(_alias_key(n), set()).add(i)
        for n in dataset_class_names:
            i = index.get(key(n))
            if i is None and aliases is not None:
                hits = set().union(*(folded.get(_alias_key(a), set()) for a in [n, *aliases.get(n, ())]))
                if len(hits) > 1:
                    raise LavidError(f"dataset class {n!r} matches several signature classes through its aliases: "
                                     f"{sorted(self.class_names[j] for j in hits)}")
                i = hits.pop() if hits else None
            if i is None:
                missing.append(n)
                continue
            order.append(i)
            if self.class_names[i] != n:
                mapping.append((n, self.class_names[i]))
        if missing:
            hint = "" if normalize else " (try normalize=True / --normalize-names for case, underscores, '001.' prefixes)"
            raise LavidError(
                f"the signature has no class for dataset class(es) {missing[:10]}"
                f"{' and %d more' % (len(missing) - 10) if len(missing) > 10 else ''}{hint}"
            )
        extra = sorted(set(range(self.num_classes)) - set(order))
        if extra and not allow_extra:
            names = [self.class_names[i] for i in extra]
            raise LavidError(f"the signature has class(es) the dataset lacks: {names[:10]}"
                             f"{' and %d more' % (len(names) - 10) if len(names) > 10 else ''}")
        idx = torch.tensor(order, dtype=torch.long)
        out = LLMSignature(
            dataset_class_names, self.probs[idx].clone(), self.offsets.clone(), logits=self.logits[idx].clone(),
            questions=self.questions, provenance=self.provenance,
        )
        out.alignment = AlignmentReport(mapping)
        return out

    # ------------------------------------------------------------------ io
    def content_hash(self) -> str:
        meta = json.dumps({"classes": self.class_names, "offsets": self.offsets.tolist(),
                           "questions": _questions_to_json(self.questions)}, sort_keys=True)
        h = hashlib.sha256(meta.encode())
        h.update(self.probs.contiguous().numpy().tobytes())
        return h.hexdigest()

    def metadata(self) -> dict:
        prov = dict(self.provenance)
        prov["content_hash"] = self.content_hash()
        return {
            "format": "lavid-signature",
            "format_version": FORMAT_VERSION,
            "class_names": self.class_names,
            "questions": _questions_to_json(self.questions),
            "provenance": prov,
        }

    def save(self, path: str | Path) -> Path:
        tensors = {"probs": self.probs, "logits": self.logits, "offsets": self.offsets}
        return save_tensor_file(path, tensors, self.metadata())

    @classmethod
    def load(cls, path: str | Path) -> "LLMSignature":
        path = Path(path)
        if path.suffix == ".json" and path.is_file():
            raise LavidError(f"{path} is a JSON file; import the authors' format first: lavid signature import {path}")
        tensors, meta = load_tensor_file(path, "signature")
        if not isinstance(meta.get("class_names"), list):
            raise LavidError(f"{path}: its 'lavid' metadata lists no class_names: not a LaViD signature")
        for key in ("probs", "offsets"):
            if key not in tensors:
                raise LavidError(f"{path}: signature lacks tensor {key!r}")
        qs = _questions_from_json(meta.get("questions"))
        return cls(meta["class_names"], tensors["probs"], tensors["offsets"], logits=tensors.get("logits"),
                   questions=qs, provenance=meta.get("provenance", {}), source=str(path))


#: signature kinds whose rows are vectors (class-name embeddings), not answer distributions
VECTOR_KINDS = ("word_embedding", "embedding")
#: how far a question's probabilities may sum from 1 (the released files, bf16 softmaxes, are within 0.0031)
SUM_TOLERANCE = 0.01


def check_values(probs: torch.Tensor, offsets: torch.Tensor, class_names, kind, source: str) -> None:
    """Every value finite; for answer distributions also in [0, 1] and summing to 1 per question. The
    error names the source, the class and the question (1-based)."""
    bad = ~torch.isfinite(probs)
    what = "a non-finite value"
    if not bad.any() and kind not in VECTOR_KINDS:
        bad = (probs < -1e-6) | (probs > 1 + 1e-6)
        what = "a probability outside [0, 1]"
        if not bad.any():
            for q in range(len(offsets) - 1):
                sums = probs[:, offsets[q]:offsets[q + 1]].sum(1)
                off = (sums - 1).abs() > SUM_TOLERANCE
                if off.any():
                    k = int(off.nonzero()[0])
                    raise LavidError(f"{source}: class {class_names[k]!r}, question {q + 1}: probabilities sum to "
                                     f"{float(sums[k]):.4f}, not 1")
    if bad.any():
        k, col = (int(v) for v in bad.nonzero()[0])
        q = int((offsets[1:] <= col).sum())
        raise LavidError(f"{source}: class {class_names[k]!r}, question {q + 1}: {what} ({float(probs[k, col])})")


def _alias_key(name: str) -> str:
    """Case, spacing, typographic apostrophes and the order of "a / b" alternatives folded."""
    name = name.replace("\u2019", "'").replace("\u2018", "'")
    return " / ".join(sorted(" ".join(p.lower().split()) for p in name.split("/")))


def offsets_from_counts(counts) -> list[int]:
    """Option counts per question -> start column of each question, plus the total."""
    offsets = [0]
    for m in counts:
        offsets.append(offsets[-1] + m)
    return offsets


def _questions_to_json(questions):
    if questions is None:
        return None
    return [{"text": q.text, "options": list(q.options), "line": q.line} for q in questions]


def _questions_from_json(obj):
    if obj is None:
        return None
    return [Question(d["text"], tuple(d["options"]), d.get("line", 0)) for d in obj]


def check_unique_class_names(names: Sequence[str], what: str, source: str | None = None) -> None:
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n.strip():
            raise LavidError(f"{source or what}: class entry {i} is not a non-empty string: {n!r}")
        if n in seen:
            raise LavidError(f"{source or what}: class {n!r} appears twice (entries {seen[n]} and {i})")
        seen[n] = i


def read_class_names(path: str | Path) -> list[str]:
    """A class list: a JSON list of names, or a text file with one name per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LavidError(f"cannot read class list {path}: {e}") from None
    if path.suffix == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise LavidError(f"{path}:{e.lineno}: invalid JSON in class list ({e.msg})") from None
        if isinstance(names, dict):
            names = list(names)
        if not isinstance(names, list):
            raise LavidError(f"{path}: expected a JSON list of class names")
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise LavidError(f"{path}: class list is empty")
    check_unique_class_names(names, "class list", str(path))
    return names


__all__ = ["LLMSignature", "read_class_names", "normalize_class_name", "check_unique_class_names"]
