"""Extraction split over processes or nodes: ``lavid signature extract --shard i/n`` and ``lavid signature merge``.

The prompts (class x question) are sorted by length and cut into batches exactly as one process
would; shard ``i`` of ``n`` answers batches ``i, i + n, i + 2n, ...``. So every prompt is computed
in the same batch as in an unsharded run, and the merged signature equals the unsharded one bit for
bit. A shard file is safetensors (``index``: prompt numbers, ``logits``: their label logits) with
JSON metadata (the shard, the class names, the questions, the provenance), never a pickle.
:func:`merge` refuses shards of different runs, overlapping shards and missing ones, naming them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from ..errors import LavidError
from ..utils import load_tensor_file, save_tensor_file
from .questions import Question
from .llm_signature import LLMSignature, _questions_from_json, _questions_to_json

FORMAT = "lavid-answer-shard"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise LavidError(f"--shard must be i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise LavidError(f"--shard {text}: need 0 <= i < n")
    return i, n


def write_shard(path, answers: dict[int, torch.Tensor], shard: tuple[int, int], questions: Sequence[Question],
                class_names: Sequence[str], provenance: dict) -> Path:
    index = sorted(answers)
    logits = torch.stack([answers[i] for i in index]) if index else torch.zeros(0, 1)
    meta = {"format": FORMAT, "shard": list(shard), "num_prompts": len(class_names) * len(questions),
            "class_names": list(class_names), "questions": _questions_to_json(questions), "provenance": provenance}
    return save_tensor_file(path, {"index": torch.tensor(index, dtype=torch.long), "logits": logits}, meta)


def _same_run(meta: dict) -> str:
    """What shards of one extraction share (everything but the shard and the run's versions/time)."""
    prov = {k: v for k, v in meta["provenance"].items() if k not in ("library_versions", "question_source")}
    return json.dumps([meta["class_names"], meta["questions"], meta["shard"][1], prov], sort_keys=True, default=str)


def merge(paths: Sequence[str | Path]) -> LLMSignature:
    """The signature of the extraction the shard files ``paths`` split."""
    from .llm_backend import rows_from_answers

    shards = []
    for p in paths:
        tensors, meta = load_tensor_file(p, "answer shard")
        if meta.get("format") != FORMAT:
            raise LavidError(f"{p}: not an answer shard (written by lavid signature extract --shard i/n)")
        shards.append((Path(p), tensors, meta))
    first = shards[0]
    for p, _, meta in shards[1:]:
        if _same_run(meta) != _same_run(first[2]):
            raise LavidError(f"{p} and {first[0]} are shards of different extractions (classes, questions, model, "
                             f"prompt or shard count differ)")
    n = first[2]["shard"][1]
    seen: dict[int, Path] = {}
    for p, _, meta in shards:
        i = meta["shard"][0]
        if i in seen:
            raise LavidError(f"{p} and {seen[i]} are both shard {i}/{n}")
        seen[i] = p
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise LavidError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing: merge all {n} shards")
    answers: dict[int, torch.Tensor] = {}
    for p, tensors, _ in shards:
        for i, row in zip(tensors["index"].tolist(), tensors["logits"]):
            if i in answers:
                raise LavidError(f"{p}: prompt {i} is also in another shard")
            answers[i] = row
    meta = first[2]
    if len(answers) != meta["num_prompts"]:
        raise LavidError(f"the shards hold {len(answers)} of {meta['num_prompts']} answers")
    questions = _questions_from_json(meta["questions"])
    prov = {**meta["provenance"], "merged_from": n}
    logits = rows_from_answers(answers, questions, len(meta["class_names"]))
    return LLMSignature.from_option_logits(meta["class_names"], logits, questions,
                                           temperature=prov.get("temperature", 1.0), provenance=prov)
