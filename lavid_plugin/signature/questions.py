"""Multiple-choice question files: read, validate, instantiate per class, write.

The format is the one the LaViD authors released (``../shared/reference/questions``)::

    What is the primary color on the head of the class?
        1. Red
        2. Black

Blocks are separated by blank lines; the first line of a block is the question, the rest are
numbered options (``1.`` or ``1)``; letters ``A.`` are read too). Indentation may be spaces, tabs
or U+2003, lines may end in spaces or CRLF, and a leading ``Ψ`` marker (the paper's generation
prompt asks for it) is dropped.

The class placeholder is replaced on word boundaries only. Warning: the authors' code replaced the
substring ``"class"`` anywhere (so ``"classification"`` would have been mangled); where a question
contains the placeholder as a whole phrase, both give the same text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import LavidError

#: phrase -> replacement; ``{name}`` is the class name. "the class" keeps its article so that
#: "the class's plumage" becomes "the Laysan Albatross's plumage", as in the authors' prompts.
DEFAULT_PLACEHOLDERS: dict[str, str] = {"<object>": "{name}", "the class": "the {name}"}

_OPTION_RE = re.compile(r"^(?:(\d{1,2})|([A-Za-z]))[.)]\s+(.*)$")
_MARKERS = "Ψψ"


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    line: int = 0  # 1-based line of the question in its file (0: not from a file)

    @property
    def num_options(self) -> int:
        return len(self.options)


@dataclass
class ValidationIssue:
    kind: str  # no_placeholder | single_option | option_count | duplicate | duplicate_option | option_has_class | empty_option
    index: int  # question index (0-based)
    line: int
    message: str


@dataclass
class ValidationReport:
    """Every issue found. When no option count was asked for (``num_options``), a question whose count
    differs from the file's most common one is listed (``option_count``) but is no problem: variable M
    is allowed, and :meth:`format` says so once."""
    source: str
    issues: list[ValidationIssue] = field(default_factory=list)
    variable_m_allowed: bool = False

    @property
    def problems(self) -> list[ValidationIssue]:
        return [i for i in self.issues if not (self.variable_m_allowed and i.kind == "option_count")]

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_kind(self, kind: str) -> list[ValidationIssue]:
        return [i for i in self.issues if i.kind == kind]

    def bad_indices(self) -> set[int]:
        return {i.index for i in self.problems}

    def format(self) -> str:
        problems, lines = self.problems, []
        if len(problems) != len(self.issues):
            counts = sorted({int(i.message.split(" has ")[1].split()[0]) for i in self.by_kind("option_count")})
            lines.append(f"{self.source}: option counts vary ({len(self.by_kind('option_count'))} question(s) with "
                         f"{counts} options beside the most common count): variable M is allowed; pass -m M "
                         f"to require one count")
        if not problems:
            return "\n".join(lines + [f"{self.source}: no problems found"])
        lines += [f"{self.source}: {len(problems)} problem(s)"]
        lines += [f"  {self.source}:{i.line}: [{i.kind}] {i.message}" for i in problems]
        return "\n".join(lines)


def _clean(line: str) -> str:
    line = line.strip()  # str.strip() also removes U+2003 and tabs
    while line and line[0] in _MARKERS:
        line = line[1:].strip()
    return line


def parse_questions_text(text: str, source: str = "<text>") -> tuple[list[Question], list[str]]:
    """Parse question-file text. Returns (questions, warnings); warnings name ``source:line``."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    questions: list[Question] = []
    warnings: list[str] = []
    cur_text: str | None = None
    cur_line = 0
    cur_opts: list[str] = []

    def close():
        nonlocal cur_text, cur_opts
        if cur_text is not None:
            if cur_opts:
                questions.append(Question(cur_text, tuple(cur_opts), cur_line))
            else:
                warnings.append(f"{source}:{cur_line}: stray line without options ignored: {cur_text!r}")
        cur_text, cur_opts = None, []

    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = _clean(raw)
        if not line:
            close()
            continue
        m = _OPTION_RE.match(line)
        if m and cur_text is not None:
            cur_opts.append(m.group(3).strip())
            continue
        if m and cur_text is None:
            warnings.append(f"{source}:{lineno}: option line outside a question ignored: {line!r}")
            continue
        # a text line: starts a new question (a question right after options needs no blank line)
        if cur_text is not None and not cur_opts:
            warnings.append(f"{source}:{cur_line}: stray line without options ignored: {cur_text!r}")
            cur_text = None
        close()
        cur_text, cur_line = line, lineno
    close()
    return questions, warnings


def read_questions(path: str | Path) -> tuple[list[Question], list[str]]:
    """Read a question file; an unreadable or question-less file is a :class:`LavidError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LavidError(f"cannot read question file {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LavidError(f"{path}:{line}: question file is not UTF-8 text") from None
    questions, warnings = parse_questions_text(text, str(path))
    if not questions:
        raise LavidError(
            f"{path}: no questions found (expected blocks of a question line followed by "
            f"numbered options '1. ...', separated by blank lines)"
        )
    return questions, warnings


def format_questions(questions: Iterable[Question]) -> str:
    """The paper's file format (round-trips through :func:`parse_questions_text`)."""
    blocks = []
    for q in questions:
        lines = [q.text] + [f"    {i}. {o}" for i, o in enumerate(q.options, start=1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# ----------------------------------------------------------------------------- placeholders
def parse_placeholder_specs(specs: Sequence[str] | None) -> dict[str, str]:
    """``["the flower", "the breed=>{name}"]`` -> {phrase: replacement}, on top of the defaults.

    A phrase that starts with "the " keeps its article (``the flower`` -> ``the {name}``).
    """
    table = dict(DEFAULT_PLACEHOLDERS)
    for spec in specs or ():
        phrase, sep, repl = spec.partition("=>")
        phrase = phrase.strip()
        if not phrase:
            raise LavidError(f"empty placeholder phrase in {spec!r}")
        if sep:
            if "{name}" not in repl:
                raise LavidError(f"placeholder replacement {repl!r} must contain {{name}}")
            table[phrase] = repl.strip()
        else:
            table[phrase] = "the {name}" if phrase.lower().startswith("the ") else "{name}"
    return table


def _placeholder_regex(table: dict[str, str]) -> re.Pattern:
    alts = []
    for phrase in sorted(table, key=len, reverse=True):  # longest first: "the class" before "class"
        esc = r"\s+".join(re.escape(w) for w in phrase.split())  # "the  class" matches too
        left = r"(?<!\w)" if phrase[0].isalnum() or phrase[0] == "_" else ""
        right = r"(?!\w)" if phrase[-1].isalnum() or phrase[-1] == "_" else ""
        alts.append(f"{left}{esc}{right}")
    return re.compile("|".join(alts), re.IGNORECASE)


class Instantiator:
    """Replace the class placeholder in questions, on word boundaries."""

    def __init__(self, placeholders: dict[str, str] | None = None):
        self.table = {" ".join(k.lower().split()): v for k, v in (placeholders or DEFAULT_PLACEHOLDERS).items()}
        self.regex = _placeholder_regex(self.table)

    def has_placeholder(self, text: str) -> bool:
        return self.regex.search(text) is not None

    def __call__(self, text: str, name: str) -> str:
        def repl(m: re.Match) -> str:
            out = self.table[" ".join(m.group(0).lower().split())].replace("{name}", name)
            if m.group(0)[:1].isupper() and out[:1].islower():
                out = out[0].upper() + out[1:]  # "The class ..." -> "The Red Finch ..."
            return out

        return self.regex.sub(repl, text)


# ----------------------------------------------------------------------------- validation
def validate_questions(
    questions: Sequence[Question],
    *,
    num_options: int | None = None,
    class_names: Sequence[str] = (),
    instantiator: Instantiator | None = None,
    source: str = "<questions>",
    allow_variable_m: bool = False,
) -> ValidationReport:
    """Report questions that carry no information or would confuse the answering model.

    ``num_options`` defaults to the most common option count in the file; with ``allow_variable_m``
    (and no ``num_options``) other counts are noted once, not counted as problems.
    """
    inst = instantiator or Instantiator()
    report = ValidationReport(source, variable_m_allowed=allow_variable_m and num_options is None)
    if not questions:
        return report
    expected = num_options or Counter(q.num_options for q in questions).most_common(1)[0][0]
    seen: dict[str, int] = {}
    lowered_names = [(n, n.lower()) for n in class_names]
    for i, q in enumerate(questions):
        add = lambda kind, msg: report.issues.append(ValidationIssue(kind, i, q.line, msg))  # noqa: E731
        if not inst.has_placeholder(q.text):
            add("no_placeholder", f"question {i + 1} has no class placeholder (same answer for every class): {q.text!r}")
        if q.num_options < 2:
            add("single_option", f"question {i + 1} has {q.num_options} option(s): its answer is the same for "
                                 f"every class (a constant target): {q.text!r}")
        elif q.num_options != expected:
            add("option_count", f"question {i + 1} has {q.num_options} options, expected {expected}")
        lowered = [" ".join(o.lower().split()) for o in q.options]
        twice = sorted({o for o in lowered if o and lowered.count(o) > 1})
        if twice:
            add("duplicate_option", f"question {i + 1} lists option(s) {twice} twice (case-insensitive)")
        key = " ".join(q.text.lower().split())
        if key in seen:
            add("duplicate", f"question {i + 1} repeats question {seen[key] + 1}: {q.text!r}")
        else:
            seen[key] = i
        for j, opt in enumerate(q.options, start=1):
            if not opt:
                add("empty_option", f"question {i + 1} option {j} is empty")
                continue
            low = opt.lower()
            for name, lname in lowered_names:
                if re.search(rf"(?<!\w){re.escape(lname)}(?!\w)", low):
                    add("option_has_class", f"question {i + 1} option {j} names the class {name!r}: {opt!r}")
    return report


def apply_validation(
    questions: list[Question], report: ValidationReport, mode: str, warn=print
) -> list[Question]:
    """``strict``: any problem is an error; ``lenient``: drop the bad questions and warn;
    ``warn``: keep everything and warn (needed to pair with released signatures)."""
    if mode not in ("strict", "lenient", "warn"):
        raise LavidError(f"validation mode must be strict, lenient or warn, got {mode!r}")
    if report.ok:
        return questions
    if mode == "strict":
        raise LavidError(report.format())
    warn(report.format())
    if mode == "warn":
        return questions
    bad = report.bad_indices()
    kept = [q for i, q in enumerate(questions) if i not in bad]
    warn(f"{report.source}: dropped {len(bad)} question(s), {len(kept)} kept")
    if not kept:
        raise LavidError(f"{report.source}: every question was dropped by validation")
    return kept
