"""The authors' released per-image aspect banks (MaKD's teacher) as a :class:`~.bank.SampleBank`.

Their files (``questions/<dataset>/logits/internvl2_img.json`` or ``.jsonl``) map an image to its 50
P(Yes) values, keyed by the image's file name (``image_05656.jpg``) or a path ending in it
(``jpg/image_05656.jpg``, ``Class_Folder/img.jpg``). Each training image of a config is matched by the
longest tail of its sample id that is a key; an image with no row is refused by name, rows of images
not in the split (the authors' other splits) are left out and counted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch

from ..errors import LavidError
from .bank import SampleBank


def read_released_rows(path: str | Path) -> dict[str, list[float]]:
    """``{key: values}`` from the authors' JSON (one mapping) or JSONL (one mapping per line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LavidError(f"{path}: cannot read it ({type(e).__name__})") from None
    rows: dict = {}
    try:
        if path.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        raise LavidError(f"{path}:{n}: expected {{image: [values]}}, got {type(item).__name__}")
                    rows.update(item)
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise LavidError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(rows, dict) or not rows:
        raise LavidError(f"{path}: expected a mapping {{image name: [P(Yes) per aspect question]}}")
    return rows


def match_rows(sample_ids: Sequence[str], keys, source: str) -> list[str]:
    """Per sample id the released key of its image: the longest tail of its path that is a key."""
    keys = set(keys)
    out, missing, used = [], [], {}
    for sid in sample_ids:
        parts = sid.split("/")
        key = next((k for k in ("/".join(parts[i:]) for i in range(len(parts))) if k in keys), None)
        if key is None:
            missing.append(sid)
            continue
        if key in used:
            raise LavidError(f"{source}: key {key!r} matches two training images, {used[key]!r} and {sid!r}; "
                             f"its keys do not tell them apart")
        used[key] = sid
        out.append(key)
    if missing:
        raise LavidError(f"{source} has no row for {len(missing)} of the {len(sample_ids)} training images, first "
                         f"{[Path(m).name for m in missing[:5]]} ({missing[0]!r}): it does not cover this split")
    return out


def import_released_bank(path: str | Path, sample_ids: Sequence[str], description: dict | None = None) -> SampleBank:
    """A bank of ``p_yes [N, A]`` for ``sample_ids`` from the authors' released file."""
    path = Path(path)
    rows = read_released_rows(path)
    keys = match_rows(list(sample_ids), rows, str(path))
    widths = {len(rows[k]) if isinstance(rows[k], list) else -1 for k in keys}
    if len(widths) != 1 or -1 in widths:
        raise LavidError(f"{path}: rows of different lengths {sorted(widths)}; expected one P(Yes) per aspect question")
    try:
        values = torch.tensor([rows[k] for k in keys], dtype=torch.float32)
    except (TypeError, ValueError):
        raise LavidError(f"{path}: a row holds something other than numbers") from None
    bad = ~torch.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise LavidError(f"{path}: the row of {keys[i]!r} holds values outside [0, 1]; P(Yes) are probabilities")
    prov = {"source": "released", "kind": "aspects", "imported_from": path.name,
            "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "model": "InternVL2-8B (the authors' bank)",
            "rows_in_file": len(rows), "rows_used": len(keys), "dataset": description or {}}
    return SampleBank(list(sample_ids), {"p_yes": values}, provenance=prov, source=str(path))
