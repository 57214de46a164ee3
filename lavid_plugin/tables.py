"""The paper's tables as data: the one place that lists datasets, students, methods and their overrides.

A table is rows (methods: config overrides, :data:`METHODS`) x columns (dataset, or ImageNet group,
x student). Everything else is a view of it:

* ``scripts/make_configs.py`` writes one YAML per :class:`Cell` (:meth:`Cell.config`), with
  ``EXPERIMENT.TAG`` = ``<table>,<dataset folder>,<student>,<method>`` (:attr:`Cell.tag`);
* ``scripts/reproduce.py`` (:mod:`lavid_plugin.reproduce`) launches a table's cells, visual
  teachers first;
* ``lavid report`` (:mod:`lavid_plugin.report`) finds each run's cell from that tag
  (:func:`cell_from_tag`) and lays the runs out as the table;
* ``tests/test_configs.py`` checks the files on disk against the cells.

Adding a table is one entry in :data:`TABLES` (and its methods in :data:`METHODS`, if new).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from .distillers.LAVID import LaViD
from .models import STUDENTS  # noqa: F401 (short student name -> DISTILLER.STUDENT)

#: Table 1's fine-grained datasets (``DATASET.TYPE``), in the paper's column order
FINE_GRAINED = ("cub", "caltech101", "flowers", "aircraft", "pets", "cars")
#: Table 3's ImageNet WordNet groups (``DATASET.GROUP`` of ``DATASET.TYPE imagenet_group``)
IMAGENET_GROUPS = ("artifact", "bird", "consumer_goods", "container", "device", "instrumentality", "invertebrate",
                   "mammal", "vertebrate")
#: the signature each dataset's LaViD runs read (``lavid signature import`` / ``extract`` writes them)
SIGNATURE_NAME = "qwen2.5-7b_chat_50-5.safetensors"
#: datasets whose LaViD targets come from another dataset's signature (Waterbirds: CUB species)
SIGNATURE_DIR = {"waterbirds": "cub"}
#: the visual teacher of every row that distills from one (trained as its own cell first)
TEACHER_STUDENT, TEACHER_METHOD = "res50", "vanilla"
#: the first field of a teacher cell's EXPERIMENT.TAG (teachers belong to no table)
TEACHER_TABLE = "teacher"

# The base distillers' settings are those of the authors' released code (KD: T 1, CE 0.5, KD 0.5;
# DKD: T 4, alpha 1, beta 2, warm-up 1; MLKD: T 1, CE 0.5, KD 0.5). MLKD's settings are written
# under KD too: the logit-standardization fork's MLKD reads KD.*, the plugin's MLKD.*.
_MLKD = {"MLKD": {"TEMPERATURE": 1.0, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}},
         "KD": {"TEMPERATURE": 1, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}}}
# the paper's gamma and lambda, as LaViD declares them (written into the configs for the reader)
_LAVID_LOSS = {k: LaViD.DEFAULTS["LOSS"][k] for k in ("BASE_WEIGHT", "LAVID_WEIGHT")}

#: method (a table row) -> its config overrides, merged over the cell's dataset/solver settings
METHODS = {
    "vanilla": {"DISTILLER": {"TYPE": "NONE"}},
    "kd": {"DISTILLER": {"TYPE": "KD"}, "KD": {"TEMPERATURE": 1, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}}},
    "rkd": {"DISTILLER": {"TYPE": "RKD"}},
    "dkd": {"DISTILLER": {"TYPE": "DKD"}, "DKD": {"T": 4.0, "ALPHA": 1.0, "BETA": 2.0, "WARMUP": 1, "CE_WEIGHT": 1.0}},
    "mlkd": {"DISTILLER": {"TYPE": "MLKD"}, **_MLKD},
    "ls": {"DISTILLER": {"TYPE": "MLKD"}, "EXPERIMENT": {"LOGIT_STAND": True}, **_MLKD},
    # LaViD alone: the signature is the only teacher (mdistiller's tools/train.py builds a "teacher")
    "lavid": {"DISTILLER": {"TYPE": "LAVID", "TEACHER": "LLMSignature"},
              "LAVID": {"BASE": "NONE", "LOSS": dict(_LAVID_LOSS)}},
    # LaViD on top of MLKD + logit standardization with the ResNet-50 teacher ("LaViD+LS", "QN+R50")
    "lavid_ls": {"DISTILLER": {"TYPE": "LAVID"}, "EXPERIMENT": {"LOGIT_STAND": True}, **_MLKD,
                 "LAVID": {"BASE": "MLKD", "LOSS": dict(_LAVID_LOSS)}},
    # Table 5: LaViD's head regressing a static class-name embedding instead of the LLM's answers
    "emb_minilm": {"DISTILLER": {"TYPE": "LAVID", "TEACHER": "LLMSignature"},
                   "LAVID": {"BASE": "NONE", "LOSS": dict(_LAVID_LOSS)}},
    "emb_bert": {"DISTILLER": {"TYPE": "LAVID", "TEACHER": "LLMSignature"},
                 "LAVID": {"BASE": "NONE", "LOSS": dict(_LAVID_LOSS)}},
}
#: Table B's LLaVA layers (Table 1 uses -12)
TABLE_B_LAYERS = (-1, -6, -12, -18, -24, -30)
#: per-image teacher banks (Stage 1b, ``lavid teacher features|aspects``), under ./banks/<dataset folder>/
BANK_FILES = {"features": "llava-1.5-7b_features.safetensors", "aspects": "internvl2-8b_aspects.safetensors"}
#: MaKD's aspect questions per dataset (``lavid teacher aspect-questions``), beside the banks
ASPECT_QUESTIONS = "aspect_questions.txt"


def _mllm(kind: str, layer: int) -> dict:
    node = {"fitnet": "FITNET_MLLM", "crd": "CRD_MLLM"}[kind]
    return {"DISTILLER": {"TYPE": node}, node: {"LAYER": layer}}


#: Table 1's rows on LLaVA's hidden states (layer -12), by kind; Table B has each at every layer
MLLM_ROWS = {"fitnet": "fitnet_llava", "crd": "crd_llava"}


def layer_method(kind: str, layer: int) -> str:
    """Table B's row of ``kind`` (``fitnet``/``crd``) at LLaVA layer ``layer``: ``fitnet_llava_l12`` for -12."""
    return f"{kind}_llava_l{-layer}"


def method_layer(method: str) -> tuple[str, int]:
    """Inverse of :func:`layer_method`: ``(kind, layer)``."""
    kind, n = method.split("_llava_l")
    return kind, -int(n)


METHODS.update({
    # the multimodal-LLM baselines of Table 1: MaKD (InternVL2-8B's aspect answers), FitNet and CRD on
    # LLaVA-1.5-7B's hidden states at layer -12 (the last prompt token, as the authors)
    "makd": {"DISTILLER": {"TYPE": "MAKD"}},
    **{row: _mllm(kind, -12) for kind, row in MLLM_ROWS.items()},
    # Table B: the same at each layer
    **{layer_method(k, layer): _mllm(k, layer) for k in MLLM_ROWS for layer in TABLE_B_LAYERS},
})


# ------------------------------------------------- what a row needs, asked of its distiller class
@functools.lru_cache(maxsize=None)
def _cfg_of(spec_json: str):
    from .config import cfg_from_dict

    return cfg_from_dict(json.loads(spec_json), where="tables.METHODS")


def method_cfg(method: str):
    """The config of a row: the defaults with the row's overrides (its distiller's hooks read it)."""
    return _cfg_of(json.dumps(METHODS[method], sort_keys=True))


def method_class(method: str):
    """The distiller class of a row (``DISTILLER.TYPE`` in the registry)."""
    from .distillers import lookup

    return lookup(method_cfg(method).DISTILLER.TYPE, key=f"tables.METHODS[{method!r}] DISTILLER.TYPE")


def needs_visual_teacher(method: str) -> bool:
    """Whether the row distills from the trained visual teacher (``res50_vanilla`` of the same dataset)."""
    return bool(method_class(method).needs_teacher(method_cfg(method)))


def reads_signature(method: str) -> bool:
    """Whether the row reads a per-class teacher file (the dataset's signature, ``LAVID.SIGNATURE``)."""
    spec = method_class(method).precomputed_teacher(method_cfg(method))
    return spec is not None and spec.per == "class"


def reads_bank(method: str) -> tuple[str, str] | None:
    """``(config node, bank kind)`` of the per-image bank the row reads, or None. The kind
    (``features``/``aspects``: the ``lavid teacher`` command that writes it) is the class's ``BANK_KIND``."""
    cls, cfg = method_class(method), method_cfg(method)
    spec = cls.precomputed_teacher(cfg)
    if spec is None or spec.per != "sample":
        return None
    return spec.key.rsplit(".", 1)[0], getattr(cls, "BANK_KIND", "")


def trainer_of(method: str) -> str | None:
    """mdistiller's ``SOLVER.TRAINER`` the row needs under the bridge: ``sample`` when its distiller
    looks its teacher up by sample index, ``ours`` (the fork's two-view trainer) for two views."""
    cls, cfg = method_class(method), method_cfg(method)
    if cls.needs_sample_index(cfg):
        return "sample"
    return "ours" if tuple(cls.views_for(cfg)) == ("weak", "strong") else None


def __getattr__(name):
    """The derived sets under their names (``tables.READS_SIGNATURE``, ...), computed when read."""
    if name == "VISUAL_TEACHER":
        return frozenset(m for m in METHODS if needs_visual_teacher(m))
    if name == "READS_SIGNATURE":
        return frozenset(m for m in METHODS if reads_signature(m))
    if name == "READS_BANK":
        return {m: reads_bank(m) for m in METHODS if reads_bank(m)}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the paper's fine-grained recipe: 240 epochs, batch 16, SGD lr 0.01 (x0.1 at 150/180/210), wd 5e-4
PAPER_SOLVER = {"BATCH_SIZE": 16, "EPOCHS": 240, "LR": 0.01, "LR_DECAY_STAGES": [150, 180, 210], "LR_DECAY_RATE": 0.1,
                "WEIGHT_DECAY": 0.0005, "MOMENTUM": 0.9, "TYPE": "SGD"}
#: its ImageNet recipe (Table 3): 100 epochs, batch 512, lr 0.2 (x0.1 at 30/60/90), wd 1e-4
IMAGENET_SOLVER = {"BATCH_SIZE": 512, "EPOCHS": 100, "LR": 0.2, "LR_DECAY_STAGES": [30, 60, 90], "LR_DECAY_RATE": 0.1,
                   "WEIGHT_DECAY": 0.0001, "MOMENTUM": 0.9, "TYPE": "SGD"}
IMAGENET = "imagenet_group"
#: Table 2's students start from pretrained weights and have their own recipes (over the dataset's)
STUDENT_RECIPES = {
    # ViT-B/16 from ImageNet weights (torchvision's file in the torch hub cache, or STUDENT_CKPT):
    # fine-tuned 500 epochs, batch 512, cosine, as the paper writes
    "vit_b16": {"SOLVER": {"BATCH_SIZE": 512, "EPOCHS": 500, "SCHEDULER": "cosine"}},
    # the same student as the authors' code trains it: SGD at the dataset's lr, MultiStepLR at 150/180/210
    "vit_b16_authors": {"SOLVER": {"BATCH_SIZE": 512, "EPOCHS": 500, "SCHEDULER": "step",
                                   "LR_DECAY_STAGES": [150, 180, 210]}},
    # CLIP ViT-B/16 (a local checkpoint folder), classifier from "a photo of a {class}." text embeddings:
    # the paper's 75 epochs at batch 16; AdamW lr 1e-5 as the authors' code (which used batch 32)
    "clip_b16": {"SOLVER": {"BATCH_SIZE": 16, "EPOCHS": 75, "TYPE": "AdamW", "LR": 1e-05, "WEIGHT_DECAY": 0.1,
                            "SCHEDULER": "cosine"},
                 "DISTILLER": {"STUDENT_CKPT": "./pretrained/clip-vit-base-patch16"}},
}
#: notes a cell's YAML header carries (differences from the paper a reader should know)
STUDENT_NOTES = {"vit_b16": "ViT-B/16 with the paper's schedule (cosine); vit_b16_authors.yaml: the authors' code's "
                            "(MultiStepLR at 150/180/210).",
                 "vit_b16_authors": "ViT-B/16 as the authors' code schedules it (MultiStepLR at 150/180/210); "
                                    "vit_b16.yaml: the paper's cosine.",
                 "clip_b16": "The paper: CLIP 75 epochs, batch 16 (followed here); the authors' code: batch 32, "
                             "AdamW lr 1e-5 (lr followed here; weight decay 0.1 is Wortsman et al.'s)."}
#: datasets whose LaViD target is looked up per training image, not by label: Waterbirds (each image's CUB
#: species), ImageNet groups under the 1000-way head (the group's signature row of an ImageNet label)
PER_IMAGE_TARGETS = ("waterbirds", IMAGENET)
#: signature files other than SIGNATURE_NAME that a method reads (Table 5: class-name embeddings)
SIGNATURE_FILES = {"emb_minilm": "minilm_384.safetensors", "emb_bert": "bert_768.safetensors"}


def folder_of(dataset: str, group: str = "") -> str:
    """``configs/lavid/<folder>/``: the dataset type, or ``imagenet_<group>``."""
    return f"imagenet_{group}" if group else dataset


def column_of(folder: str) -> tuple[str, str]:
    """Inverse of :func:`folder_of`: ``(DATASET.TYPE, DATASET.GROUP)``."""
    if folder.startswith("imagenet_") and folder[len("imagenet_"):] in IMAGENET_GROUPS:
        return IMAGENET, folder[len("imagenet_"):]
    return folder, ""


def merge(a: dict, b: dict) -> dict:
    """``b`` over ``a``, recursively; keys keep their first position (the YAMLs' key order)."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):  # a copy: a cell's config never shares a dict with METHODS
            out[k] = merge(out[k] if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class Cell:
    """One run configuration: a table, a column (dataset, group) and a student, a row (method)."""
    table: str  # the first field of EXPERIMENT.TAG: "table1", ..., or TEACHER_TABLE
    dataset: str
    student: str
    method: str
    group: str = ""

    @property
    def folder(self) -> str:
        return folder_of(self.dataset, self.group)

    @property
    def file(self) -> str:
        """``<student>.yaml`` is the LaViD run; ``<student>_<method>.yaml`` every other."""
        return f"{self.student}.yaml" if self.method == "lavid" else f"{self.student}_{self.method}.yaml"

    @property
    def path(self) -> str:
        """Relative to ``configs/lavid/``."""
        return f"{self.folder}/{self.file}"

    @property
    def tag(self) -> str:
        return f"{self.table},{self.folder},{self.student},{self.method}"

    @property
    def name(self) -> str:
        """``EXPERIMENT.NAME`` of the cell's config (and its run folder's name without a seed)."""
        return f"{self.student}_{self.method}"

    @property
    def project(self) -> str:
        return f"lavid_{self.folder}"

    @property
    def needs_visual_teacher(self) -> bool:
        return needs_visual_teacher(self.method)

    def teacher(self) -> "Cell":
        """The ResNet-50 cell whose ``student_best`` this cell distills from."""
        return Cell(TEACHER_TABLE, self.dataset, TEACHER_STUDENT, TEACHER_METHOD, self.group)

    def config(self) -> dict:
        """The cell's config overrides (what its YAML holds)."""
        cfg = {
            "EXPERIMENT": {"PROJECT": self.project, "NAME": self.name, "TAG": self.tag},
            "DATASET": {"TYPE": self.dataset, "ROOT": f"./data/{'imagenet' if self.group else self.dataset}",
                        "IMAGE_SIZE": 224, "NUM_WORKERS": 8, "TEST": {"BATCH_SIZE": 64}},
            "DISTILLER": {"STUDENT": STUDENTS[self.student]},
            "SOLVER": dict(IMAGENET_SOLVER if self.dataset == IMAGENET else PAPER_SOLVER),
            # upstream mdistiller defaults WANDB to True; "best" is the authors' choice: the lowest validation loss,
            # looked at every 5 epochs (mdistiller's best-on-test stays the default of hand-written configs)
            "LOG": {"PREFIX": "./output", "WANDB": False, "SELECT": "best_val_loss", "EVAL_FREQ": 5},
        }
        if self.group:  # the authors train a group with ImageNet's 1000-way head (on the group's images)
            cfg["DATASET"].update(GROUP=self.group, IMAGENET_HEAD="full")
        cfg = merge(cfg, STUDENT_RECIPES.get(self.student, {}))
        cfg = merge(cfg, METHODS[self.method])
        trainer = trainer_of(self.method)
        if reads_signature(self.method) and self.dataset in PER_IMAGE_TARGETS:
            trainer = trainer or "sample"  # LaViD's targets looked up by the batch's sample index
        if trainer:  # for mdistiller's tools/train.py (the bridge); the plugin's trainer needs none
            cfg["SOLVER"] = {"TRAINER": trainer, **cfg["SOLVER"]}
        if self.needs_visual_teacher:
            cfg["DISTILLER"].update(TEACHER=STUDENTS[TEACHER_STUDENT],
                                    TEACHER_CKPT=f"./output/{self.project}/{self.teacher().name}/student_best")
        if reads_signature(self.method):
            sig_dir = f"imagenet/{self.group}" if self.group else SIGNATURE_DIR.get(self.dataset, self.dataset)
            cfg["LAVID"]["SIGNATURE"] = f"./signatures/{sig_dir}/{SIGNATURE_FILES.get(self.method, SIGNATURE_NAME)}"
        bank = reads_bank(self.method)
        if bank and bank[1] in BANK_FILES:
            cfg.setdefault(bank[0], {})["BANK"] = self.bank_path
        return cfg

    @property
    def bank_path(self) -> str:
        """The per-image bank this cell reads (relative to the repository), or ""."""
        bank = reads_bank(self.method)
        if not bank:
            return ""
        if bank[1] in BANK_FILES:
            return f"./banks/{self.folder}/{BANK_FILES[bank[1]]}"
        return str(METHODS[self.method].get(bank[0], {}).get("BANK", ""))  # a bank the row names itself


@dataclass(frozen=True)
class Table:
    """Rows = ``methods`` (in the paper's order); columns = ``columns`` (dataset, group) x ``students``
    x ``metrics`` (label, worklog key)."""
    key: str  # what --table takes
    title: str
    columns: tuple
    students: tuple
    methods: tuple
    metrics: tuple = (("top-1", "test_acc"),)
    #: rows whose runs are another table's cells (method -> that table's key): no configs of their own
    borrowed: tuple = ()

    def owns(self, cell: "Cell") -> bool:
        """Whether ``cell``'s runs fill this table: its own cells, or a borrowed row's."""
        if cell.folder not in self.folders or cell.student not in self.students or cell.method not in self.methods:
            return False
        return cell.table == f"table{dict(self.borrowed).get(cell.method, self.key)}"

    @property
    def tag(self) -> str:
        return f"table{self.key}"

    @property
    def folders(self) -> list[str]:
        return [folder_of(d, g) for d, g in self.columns]

    def cells(self, folders=None, students=None, methods=None) -> list[Cell]:
        """The table's cells, column-major, optionally restricted; unknown names are an error."""
        for given, known, what in ((folders, self.folders, "datasets"), (students, self.students, "students"),
                                   (methods, self.methods, "methods")):
            bad = sorted(set(given or ()) - set(known))
            if bad:
                from .errors import LavidError

                raise LavidError(f"Table {self.key} has no {what} {bad}; it has {list(known)}")
        return [Cell(self.tag, d, s, m, g) for d, g in self.columns if not folders or folder_of(d, g) in folders
                for s in self.students if not students or s in students
                for m in self.methods if (not methods or m in methods) and m not in dict(self.borrowed)]


_CNN = ("res18", "mv2", "shuv2")
#: Waterbirds' columns: the authors log the overall test accuracy ("Average" in their tables); the
#: mean of the four (bird, background) group accuracies is another number, so both are shown, named
WATERBIRDS_METRICS = (("Overall", "test_acc"), ("Group mean", "test_acc_avg_group"),
                      ("Best group", "test_acc_best_group"), ("Worst group", "test_acc_worst_group"))

#: ``--table`` key -> table
TABLES = {
    "1": Table("1", "CNN students from scratch on six fine-grained datasets", tuple((d, "") for d in FINE_GRAINED),
               _CNN, ("vanilla", "kd", "rkd", "dkd", "mlkd", "ls", "makd", "fitnet_llava", "crd_llava", "lavid",
                      "lavid_ls")),
    "2": Table("2", "Transformer students: ViT-B/16 (ImageNet weights) and CLIP ViT-B/16 (text-initialised head)",
               tuple((d, "") for d in FINE_GRAINED), ("vit_b16", "vit_b16_authors", "clip_b16"), ("vanilla", "lavid")),
    "5": Table("5", "LaViD's LLM answers vs static class-name embeddings (MiniLM, BERT)",
               tuple((d, "") for d in FINE_GRAINED), ("res18",), ("emb_minilm", "emb_bert", "lavid"),
               borrowed=(("lavid", "1"),)),
    "B": Table("B", "FitNet and CRD on LLaVA-1.5 hidden states, by layer", tuple((d, "") for d in FINE_GRAINED),
               _CNN, tuple(layer_method(k, layer) for k in MLLM_ROWS for layer in TABLE_B_LAYERS)),
    "3": Table("3", "ResNet-18 on ImageNet WordNet groups (one signature per group)",
               tuple((IMAGENET, g) for g in IMAGENET_GROUPS), ("res18",), ("vanilla", "lavid")),
    "4": Table("4", "Waterbirds: group accuracies", (("waterbirds", ""),), _CNN,
               ("vanilla", "kd", "rkd", "dkd", "mlkd", "lavid"), WATERBIRDS_METRICS),
}


def teacher_cells() -> list[Cell]:
    """One ResNet-50 teacher per column that some table distills from a visual teacher on."""
    out = {}
    for t in TABLES.values():
        for c in t.cells():
            if c.needs_visual_teacher:
                out.setdefault(c.folder, c.teacher())
    return list(out.values())


def all_cells() -> list[Cell]:
    """Every cell with a config file: the teachers, then each table's cells."""
    return teacher_cells() + [c for t in TABLES.values() for c in t.cells()]


def cell_from_tag(tag: str) -> Cell | None:
    """The cell a config generated from this module describes (its ``EXPERIMENT.TAG``), or None."""
    parts = str(tag).split(",")
    if len(parts) != 4:
        return None
    table, folder, student, method = parts
    dataset, group = column_of(folder)
    return Cell(table, dataset, student, method, group)
