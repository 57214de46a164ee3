"""The authors' released signature files: ``{class name: [[p_1..p_M] per question]}`` JSON.

Imported into :class:`~.llm_signature.LLMSignature` (values checked, a question with no options dropped
with a warning, aligned by name to a class list, through aliases where a dataset has them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from ..errors import LavidError
from ..utils import get_logger
from .questions import Question
from .llm_signature import LLMSignature, offsets_from_counts


def import_reference_json(path: str | Path, *, questions: Sequence[Question] | None = None,
                          questions_source: str | None = None,
                          class_names: Sequence[str] | None = None,
                          normalize: bool = False, strict: bool = False, warn=None,
                          aliases: dict | None = None) -> "LLMSignature":
    """Read the authors' released format ``{class: [[p_1..p_M] per question]}``.

    ``minilm_384.json``-style files (``{class: [floats]}``, the word-embedding baseline) become a
    one-"question" signature with ``D`` columns, labelled as embeddings in the provenance.
    With ``questions`` the question count and each option count must match; with
    ``class_names`` the result is aligned to that label order. A question with no options (one of
    the released CUB files has one) is dropped with a warning naming its position, and recorded in
    the provenance; ``strict`` refuses the file instead.
    """
    path = Path(path)
    warn = warn or get_logger().warning
    empty: list[int] = []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LavidError(f"{path}: cannot read as JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise LavidError(f"{path}: expected a JSON object {{class name: answers}}")
    names = list(data)
    first = data[names[0]]
    kind = "llm_answers"
    if isinstance(first, list) and first and all(isinstance(x, (int, float)) for x in first):
        kind = "embedding"  # a class-name embedding, as `lavid signature embed` writes
        counts = [len(first)]
        rows = [_vector(data[n], len(first), path, n) for n in names]
    else:
        counts, rows, empty = _answer_rows(data, path, strict, warn)
        if empty and questions is not None and len(questions) == len(counts) + len(empty):
            questions = [q for i, q in enumerate(questions) if i not in empty]
    if questions is not None:
        _check_questions(path, counts, questions, questions_source or "the question file")
    offsets = offsets_from_counts(counts)
    prov = {"source": "reference-json", "imported_from": path.name, "kind": kind,
            "answering_model": _guess_model_from_name(path.stem), "question_source": questions_source,
            "temperature": 1.0 if kind == "llm_answers" else None}
    if kind == "llm_answers" and empty:
        prov["dropped_empty_questions"] = [i + 1 for i in empty]  # 1-based positions in the released file
    sig = LLMSignature(names, torch.tensor(rows, dtype=torch.float32), offsets, questions=questions, provenance=prov,
              source=str(path))
    if class_names is not None:
        try:
            sig = sig.align(class_names, normalize=normalize, aliases=aliases)
        except LavidError as e:
            raise LavidError(f"{path}: {e}") from None
    return sig


def _check_questions(path, counts: list[int], questions: Sequence[Question], src: str) -> None:
    """The released file and the question file must agree on the question and option counts."""
    qcounts = [q.num_options for q in questions]
    if len(qcounts) != len(counts):
        raise LavidError(
            f"{path} has {len(counts)} questions per class but {src} has {len(qcounts)}: "
            f"they do not belong together (refusing to pair them by position)"
        )
    bad = [i + 1 for i, (a, b) in enumerate(zip(counts, qcounts)) if a != b]
    if bad:
        raise LavidError(
            f"{path} and {src} disagree on the option count of question(s) {bad[:10]}: "
            f"they do not belong together"
        )


def _number(x, path, name, question: int | None = None) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        where = f", question {question + 1}" if question is not None else ""
        raise LavidError(f"{path}: class {name!r}{where}: {x!r} is not a number")
    return float(x)


def _vector(v, dim: int, path, name) -> list[float]:
    if not isinstance(v, list) or len(v) != dim:
        raise LavidError(f"{path}: class {name!r} has {len(v) if isinstance(v, list) else '?'} values, expected {dim}")
    return [_number(x, path, name) for x in v]


def _answer_rows(data: dict, path, strict: bool, warn) -> tuple[list[int], list[list[float]], list[int]]:
    """``(option counts, flat rows, dropped positions)`` of ``{class: [[p_1..p_M] per question]}``.

    A question with no options answers nothing: the authors' training flattens each class's answers,
    so it contributes no column. It is dropped, said and returned (refused when ``strict``)."""
    names = list(data)
    counts = _row_counts(data[names[0]], path, names[0])
    for n in names:
        c = _row_counts(data[n], path, n)
        if c != counts:
            raise LavidError(f"{path}: class {n!r} has option counts {c}, but {names[0]!r} has {counts}")
    empty = [i for i, m in enumerate(counts) if m == 0]
    if empty and strict:
        raise LavidError(f"{path}: question(s) {[i + 1 for i in empty]} have no options (--strict refuses "
                         f"the file; without it they are dropped)")
    if empty:
        warn(f"{path}: dropping question(s) {[i + 1 for i in empty]} of {len(counts)}: no options in any class")
    return [m for m in counts if m], [[_number(p, path, n, j) for j, q in enumerate(data[n]) for p in q]
                                      for n in names], empty


def _row_counts(rows, path, name) -> list[int]:
    if not isinstance(rows, list) or not all(isinstance(q, list) for q in rows):
        raise LavidError(f"{path}: class {name!r} must map to a list of per-question probability lists")
    return [len(q) for q in rows]


def _guess_model_from_name(stem: str) -> str:
    return stem.split("_")[0] if "_" in stem else stem
