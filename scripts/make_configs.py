"""Write configs/lavid/<dataset>/<student>[_<method>].yaml: one file per cell of the paper's tables.

    python scripts/make_configs.py [--check]

Table 1: datasets cub, caltech101, flowers, aircraft, pets, cars x students res18, mv2, shuv2 x
methods vanilla, kd, rkd, dkd, mlkd, ls (MLKD + logit standardization), lavid (the LLM signature
alone: ``<student>.yaml``) and lavid_ls (LaViD on top of MLKD + LS with the ResNet-50 teacher),
plus the ResNet-50 teachers (``res50_vanilla.yaml``) the visual-teacher rows need. Table 3: ImageNet
WordNet groups, ResNet-18 vanilla and lavid per group (``imagenet_<group>/``). Table 4: Waterbirds,
vanilla, kd, rkd, dkd, mlkd, lavid for the three students (LaViD targets: the CUB signature).

Hyper-parameters are the paper's: 240 epochs, batch 16, SGD lr 0.01 (x0.1 at 150/180/210), momentum
0.9, wd 5e-4, 224 px, lambda 40; ImageNet groups use its ImageNet recipe (100 epochs, batch 512,
lr 0.2, x0.1 at 30/60/90, wd 1e-4). The base distillers' settings are those of the authors' released
code (KD: T 1, CE 0.5, KD 0.5; DKD: T 4, alpha 1, beta 2, warm-up 1; MLKD: T 1, CE 0.5, KD 0.5).
``--check`` fails if the files on disk differ from what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "configs" / "lavid"

DATASETS = ["cub", "caltech101", "flowers", "aircraft", "pets", "cars"]
STUDENTS = {"res18": "resnet18", "mv2": "mobilenetv2", "shuv2": "shufflenetv2"}
TABLE1_METHODS = ["vanilla", "kd", "rkd", "dkd", "mlkd", "ls", "lavid", "lavid_ls"]
TABLE4_METHODS = ["vanilla", "kd", "rkd", "dkd", "mlkd", "lavid"]
TABLE3_METHODS = ["vanilla", "lavid"]
IMAGENET_GROUPS = ["artifact", "bird", "consumer_goods", "container", "device", "instrumentality", "invertebrate",
                   "mammal", "vertebrate"]
#: the signature each dataset's LaViD runs read (``lavid signature import`` / ``extract`` writes them)
SIGNATURE_NAME = "qwen2.5-7b_chat_50-5.safetensors"
SIGNATURE_DIR = {"waterbirds": "cub"}

#: MLKD's settings, also under KD: the logit-standardization fork's MLKD reads KD.*, the plugin's MLKD.*
_MLKD = {"MLKD": {"TEMPERATURE": 1.0, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}},
         "KD": {"TEMPERATURE": 1, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}},
         "SOLVER": {"TRAINER": "ours"}}  # the fork's two-view trainer (the bridge adds it to upstream)
METHOD_NODES = {
    "vanilla": {"DISTILLER": {"TYPE": "NONE"}},
    "kd": {"DISTILLER": {"TYPE": "KD"}, "KD": {"TEMPERATURE": 1, "LOSS": {"CE_WEIGHT": 0.5, "KD_WEIGHT": 0.5}}},
    "rkd": {"DISTILLER": {"TYPE": "RKD"}},
    "dkd": {"DISTILLER": {"TYPE": "DKD"}, "DKD": {"T": 4.0, "ALPHA": 1.0, "BETA": 2.0, "WARMUP": 1, "CE_WEIGHT": 1.0}},
    "mlkd": {"DISTILLER": {"TYPE": "MLKD"}, **_MLKD},
    "ls": {"DISTILLER": {"TYPE": "MLKD"}, "EXPERIMENT": {"LOGIT_STAND": True}, **_MLKD},
    # LaViD alone: the signature is the only teacher (mdistiller's tools/train.py builds a "teacher")
    "lavid": {"DISTILLER": {"TYPE": "LAVID", "TEACHER": "LLMSignature"},
              "LAVID": {"BASE": "NONE", "LOSS": {"CE_WEIGHT": 1.0, "LAVID_WEIGHT": 40.0}}},
    "lavid_ls": {"DISTILLER": {"TYPE": "LAVID"}, "EXPERIMENT": {"LOGIT_STAND": True}, **_MLKD,
                 "LAVID": {"BASE": "MLKD", "LOSS": {"CE_WEIGHT": 1.0, "LAVID_WEIGHT": 40.0}}},
}
VISUAL_TEACHER = {"kd", "rkd", "dkd", "mlkd", "ls", "lavid_ls"}


def file_name(student: str, method: str) -> str:
    return f"{student}.yaml" if method == "lavid" else f"{student}_{method}.yaml"


def folder_of(dataset: str, group: str = "") -> str:
    return f"imagenet_{group}" if group else dataset


def project_of(dataset: str, group: str = "") -> str:
    return f"lavid_{folder_of(dataset, group)}"


def teacher_ckpt(dataset: str) -> str:
    return f"./output/{project_of(dataset)}/res50_vanilla/student_best"


def solver(dataset: str) -> dict:
    if dataset == "imagenet_group":
        return {"BATCH_SIZE": 512, "EPOCHS": 100, "LR": 0.2, "LR_DECAY_STAGES": [30, 60, 90], "LR_DECAY_RATE": 0.1,
                "WEIGHT_DECAY": 0.0001, "MOMENTUM": 0.9, "TYPE": "SGD"}
    return {"BATCH_SIZE": 16, "EPOCHS": 240, "LR": 0.01, "LR_DECAY_STAGES": [150, 180, 210], "LR_DECAY_RATE": 0.1,
            "WEIGHT_DECAY": 0.0005, "MOMENTUM": 0.9, "TYPE": "SGD"}


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config(dataset: str, student: str, method: str, table: str, group: str = "") -> dict:
    name = f"{student}_{method}"
    cfg = {
        "EXPERIMENT": {"PROJECT": project_of(dataset, group), "NAME": name,
                       "TAG": f"{table},{folder_of(dataset, group)},{student},{method}"},
        "DATASET": {"TYPE": dataset, "ROOT": f"./data/{'imagenet' if group else dataset}", "IMAGE_SIZE": 224,
                    "NUM_WORKERS": 8, "TEST": {"BATCH_SIZE": 64}},
        "DISTILLER": {"STUDENT": STUDENTS.get(student, "resnet50")},
        "SOLVER": solver(dataset),
        "LOG": {"PREFIX": "./output", "WANDB": False},  # upstream mdistiller defaults WANDB to True
    }
    if group:
        cfg["DATASET"]["GROUP"] = group
    cfg = merge(cfg, METHOD_NODES[method])
    if cfg["SOLVER"].get("TRAINER") == "ours":  # keep SOLVER's keys together
        cfg["SOLVER"] = {"TRAINER": cfg["SOLVER"].pop("TRAINER"), **cfg["SOLVER"]}
    if method in VISUAL_TEACHER:
        cfg["DISTILLER"].update(TEACHER="resnet50", TEACHER_CKPT=teacher_ckpt(dataset))
    if method.startswith("lavid"):
        sig_dir = f"imagenet/{group}" if group else SIGNATURE_DIR.get(dataset, dataset)
        cfg["LAVID"]["SIGNATURE"] = f"./signatures/{sig_dir}/{SIGNATURE_NAME}"
    return cfg


def to_yaml(d: dict, indent: int = 0) -> str:
    lines = []
    for k, v in d.items():
        pad = "  " * indent
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines.append(to_yaml(v, indent + 1))
        elif isinstance(v, bool):
            lines.append(f"{pad}{k}: {'True' if v else 'False'}")
        elif isinstance(v, str):
            lines.append(f'{pad}{k}: "{v}"')
        else:
            lines.append(f"{pad}{k}: {v}")
    return "\n".join(lines)


def all_configs() -> dict[Path, str]:
    """Relative path -> YAML text of every table cell."""
    out = {}

    def add(dataset, student, method, table, group=""):
        header = (f"# {table}: {folder_of(dataset, group)}, {student}, {method}. "
                  f"Written by scripts/make_configs.py; edit that script, not this file.\n")
        out[Path(folder_of(dataset, group)) / file_name(student, method)] = \
            header + to_yaml(config(dataset, student, method, table, group)) + "\n"

    for d in DATASETS + ["waterbirds"]:
        add(d, "res50", "vanilla", "teacher")
    for d in DATASETS:
        for s in STUDENTS:
            for m in TABLE1_METHODS:
                add(d, s, m, "table1")
    for s in STUDENTS:
        for m in TABLE4_METHODS:
            add("waterbirds", s, m, "table4")
    for g in IMAGENET_GROUPS:
        for m in TABLE3_METHODS:
            add("imagenet_group", "res18", m, "table3", g)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = p.parse_args(argv)
    configs = all_configs()
    stale = [rel for rel, text in configs.items() if not (OUT / rel).is_file() or (OUT / rel).read_text() != text]
    if args.check:
        for rel in stale:
            print(f"out of date: configs/lavid/{rel}")
        return 1 if stale else 0
    for rel in stale:
        (OUT / rel).parent.mkdir(parents=True, exist_ok=True)
        (OUT / rel).write_text(configs[rel])
    print(f"{len(configs)} configs under {OUT} ({len(stale)} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
