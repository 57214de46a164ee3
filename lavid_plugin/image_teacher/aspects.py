"""MaKD's aspect questions: yes/no questions about what an image shows, which tell a dataset's classes apart.

A plain file, one question per line (``#`` starts a comment). ``lavid teacher aspect-questions``
asks an LLM for them with the same chat backends as ``lavid signature questions``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ..errors import LavidError
from ..utils import atomic_write_text

ASPECT_PROMPT = """You are helping to describe images of {what} so that they can be told apart.
The classes are: {classes}.

List {n} distinct yes/no questions about visual aspects of an image (colour, shape, parts, texture, \
pattern, size, background) whose answers differ between these classes. Each question must be \
answerable from one image alone with "Yes" or "No", must not name a class, and must end with "?".
{existing}Write one question per line, numbered "1.", "2.", ..., and nothing else."""


def aspect_prompt(class_names: Sequence[str], n: int, description: str | None = None,
                  existing: Sequence[str] = ()) -> str:
    have = ""
    if existing:
        have = "Do not repeat these questions:\n" + "\n".join(f"- {q}" for q in existing) + "\n"
    return ASPECT_PROMPT.format(what=description or "the classes below", classes=", ".join(class_names), n=n,
                                existing=have)


def parse_aspect_reply(text: str, class_names: Sequence[str] = ()) -> list[str]:
    """The reply's questions: numbering and bullets stripped; lines that are no question, or that
    name a class, dropped."""
    names = [c.lower().replace("_", " ") for c in class_names]
    out = []
    for line in text.splitlines():
        q = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
        if not q.endswith("?") or len(q) < 5:
            continue
        if any(n and re.search(rf"\b{re.escape(n)}\b", q.lower()) for n in names):
            continue
        out.append(q)
    return out


def read_aspect_questions(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise LavidError(f"aspect question file not found: {path}")
    qs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line in qs:
            raise LavidError(f"{path}:{n}: question {line!r} repeats line {qs.index(line) + 1}")
        qs.append(line)
    if not qs:
        raise LavidError(f"{path}: no aspect questions (one per line)")
    return qs


def generate_aspect_questions(chat, class_names: Sequence[str], n: int, *, description: str | None = None,
                              max_rounds: int = 4, log=print) -> list[str]:
    """Ask ``chat`` until ``n`` distinct questions are collected."""
    if n < 1:
        raise LavidError(f"need at least one aspect question, got {n}")
    got: list[str] = []
    for rnd in range(1, max_rounds + 1):
        new = [q for q in parse_aspect_reply(chat(aspect_prompt(class_names, n - len(got), description, got)),
                                             class_names) if q not in got]
        got += new[: n - len(got)]
        log(f"round {rnd}: {len(new)} new questions; {len(got)}/{n} collected")
        if len(got) >= n:
            return got
    raise LavidError(f"the model gave only {len(got)} usable aspect questions of the {n} asked for after "
                     f"{max_rounds} rounds; nothing was written")


def write_aspect_questions(path: str | Path, questions: Sequence[str]) -> None:
    atomic_write_text(path, "".join(q + "\n" for q in questions))
