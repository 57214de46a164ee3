"""The paper's ablations as data: one base LaViD cell (CUB, ResNet-18) and one axis of config overrides each.

    python scripts/reproduce.py --ablation lambda --seeds 3 [--dry-run]
    lavid report output --ablation lambda --out reports/lambda        # .md, .csv and .png

Each point runs ``tools/train.py`` on the base cell's config (``--base`` another LaViD config) with
the point's overrides, named
``<student>_<ablation><value>_seed<k>`` and tagged ``ablation-<name>,<dataset>,<student>,<value>``
(``EXPERIMENT.TAG``), which is how ``lavid report --ablation`` finds it. Points that read a
signature other than the dataset's default expect it under ``./signatures/<dataset>/``; the pruned
ones (Fig. 4) are written first with ``lavid signature prune`` when missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import LavidError
from .tables import SIGNATURE_FILES, SIGNATURE_NAME, Cell

BASE = Cell("ablation", "cub", "res18", "lavid")
TAG_PREFIX = "ablation-"
#: Fig. 5's teacher LLMs (signature ``<name>_chat_50-5.safetensors``); signatures of that pattern found
#: under ./signatures/<dataset>/ join the list
#: Fig. 5's nine answering LLMs, spelled as the authors' released files are (<llm>_chat_50-5.json)
TEACHER_LLMS = ("qwen2.5-0.5B", "qwen2.5-7b", "qwen2.5-72B", "llama_3.2-3b", "llama3.1-8b", "llama3.1-70b",
                "gemma3-12b", "gemma3-27b", "mistral0.3-7b")
#: Table 6's question generators: the authors' question files (chat = GPT-4o, gemini, chato3 = o3)
GENERATORS = ("chat_50-5", "gemini_70-5", "chato3_50")


def _signature(name: str, folder: str = BASE.folder) -> str:
    return f"./signatures/{folder}/{name}"


@dataclass(frozen=True)
class Ablation:
    key: str
    title: str
    axis: str
    values: tuple
    plot: str  # "line" (numeric axis, error bars) or "bar" (one bar per value)

    def overrides(self, value, folder: str = BASE.folder) -> list[str]:
        """Config overrides of one point; ``folder``: the base config's dataset (where its signatures lie)."""
        v = str(value)
        if self.key == "lambda":
            return ["LAVID.LOSS.LAVID_WEIGHT", v]
        sig = {"questions": f"qwen2.5-7b_chat_{v}-5.safetensors",
               "options": f"qwen2.5-7b_chat_50-{v}.safetensors",
               "teachers": f"{v}_chat_50-5.safetensors",
               "generators": f"qwen2.5-7b_{v}.safetensors",
               "embedding": SIGNATURE_FILES.get(f"emb_{v}", SIGNATURE_NAME),
               "entropy": SIGNATURE_NAME if v == "0" else f"{Path(SIGNATURE_NAME).stem}_drop{v}.safetensors"}[self.key]
        return ["LAVID.SIGNATURE", _signature(sig, folder)]

    def tag(self, value, folder: str = BASE.folder, student: str = BASE.student) -> str:
        return f"{TAG_PREFIX}{self.key},{folder},{student},{value}"

    def name(self, value, seed: int, student: str = BASE.student) -> str:
        return f"{student}_{self.key}{value}_seed{seed}"

    def prepare(self, value, root: Path, folder: str = BASE.folder):
        """A command that writes what the point reads, when missing (Fig. 4's pruned signatures), else None."""
        if self.key != "entropy" or str(value) == "0":
            return None
        out = self.overrides(value, folder)[1]
        if (root / out).is_file():
            return None
        return ["lavid", "signature", "prune", _signature(SIGNATURE_NAME, folder), "--drop-lowest-entropy", str(value),
                "-o", out]


ABLATIONS = {
    "lambda": Ablation("lambda", "LaViD weight lambda (Fig. A / Table A)", "lambda", tuple(range(10, 101, 10)), "line"),
    "questions": Ablation("questions", "number of questions Q, M = 5 (Fig. 6)", "questions Q",
                          (20, 30, 40, 50, 60, 70, 80), "line"),
    "options": Ablation("options", "number of options M, Q = 50 (Fig. 7)", "options M", (2, 3, 4, 5, 6, 7, 9), "line"),
    "teachers": Ablation("teachers", "teacher LLM (Fig. 5)", "teacher LLM", TEACHER_LLMS, "bar"),
    "generators": Ablation("generators", "question generator (Table 6)", "question file", GENERATORS, "bar"),
    "embedding": Ablation("embedding", "LLM answers vs class-name embeddings (Table 5)", "target",
                          ("mcq", "minilm", "bert"), "bar"),
    # 2 of 50: the paper's point, the questions under 5 % of the entropy ranking
    "entropy": Ablation("entropy", "removing the lowest-entropy questions (Fig. 4)", "questions dropped",
                        (0, 2, 5, 10, 15, 20, 25), "line"),
}


def get(name: str, root: Path | None = None) -> Ablation:
    if name not in ABLATIONS:
        raise LavidError(f"--ablation must be one of {list(ABLATIONS)}, got {name!r}")
    ab = ABLATIONS[name]
    if name == "teachers" and root is not None:  # user-extracted signatures join the list by name
        found = sorted(p.name[: -len("_chat_50-5.safetensors")]
                       for p in (root / "signatures" / BASE.dataset).glob("*_chat_50-5.safetensors"))
        ab = Ablation(ab.key, ab.title, ab.axis, tuple(dict.fromkeys(ab.values + tuple(found))), ab.plot)
    return ab


def point_of(tag: str) -> tuple[str, str, str, str] | None:
    """``(ablation, value, dataset folder, student)`` of a run's ``EXPERIMENT.TAG``, or None."""
    parts = str(tag).split(",")
    if len(parts) != 4 or not parts[0].startswith(TAG_PREFIX):
        return None
    return parts[0][len(TAG_PREFIX):], parts[3], parts[1], parts[2]
