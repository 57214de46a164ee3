"""Precomputed teachers: files written by Stage 1 (or 1b), read once when a run is built.

A distiller says which one it needs through one registry hook,
:meth:`~lavid_plugin.distillers.Distiller.precomputed_teacher`, returning a :class:`TeacherFile`:

* ``per="class"``: an :class:`~lavid_plugin.signature.LLMSignature` (LaViD's answers; a class-name
  embedding is a signature too), aligned to the dataset **by class name**; looked up by label, or
  by sample where the dataset maps each sample to a teacher class (Waterbirds: its CUB species);
* ``per="sample"``: a :class:`~lavid_plugin.image_teacher.SampleBank` (an MLLM's per-image answers
  or hidden states), aligned **by sample id** and looked up by the batch's ``index``.

:meth:`lavid_plugin.engine.build.BuildContext.load_teacher` loads and aligns it (errors name the
file, the config key and what is missing) and hands the distiller a :class:`LoadedTeacher`.
Nothing outside the distiller names the distiller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

KINDS = ("class", "sample")


@dataclass(frozen=True)
class TeacherFile:
    per: str  # "class" or "sample"
    path: str
    key: str  # the config key that named the file, for error messages
    normalize_names: bool = False  # per class: fold case/underscores/"001." prefixes when aligning

    def __post_init__(self):
        if self.per not in KINDS:
            raise ValueError(f"TeacherFile.per must be one of {KINDS}, got {self.per!r}")


@dataclass
class LoadedTeacher:
    """An aligned precomputed teacher. ``table``: the signature (rows = the dataset's teacher classes)
    or the bank (rows = the training samples). ``sample_rows``: per training sample its row of a
    per-class table when that is not the label (None: look up by label)."""
    table: object
    sample_rows: Sequence[int] | None = None
