"""The yacs config: mdistiller's schema and defaults, plus the plugin's nodes.

mdistiller's node names and defaults are kept (an mdistiller YAML still merges); the
logit-standardization fork's ``EXPERIMENT.LOGIT_STAND`` is included. New keys live under new nodes
(``LAVID``, ``MLKD``, each declared by its distiller class) or are additions to existing ones (``DATASET.ROOT`` ...), all UPPER_SNAKE with
loss weights under ``<NODE>.LOSS.<TERM>_WEIGHT`` as mdistiller's KD does.
"""

from __future__ import annotations

import copy
from pathlib import Path

from yacs.config import CfgNode as CN

CFG = CN()

# Experiment
CFG.EXPERIMENT = CN()
CFG.EXPERIMENT.PROJECT = "distill"
CFG.EXPERIMENT.NAME = ""
CFG.EXPERIMENT.TAG = "default"
CFG.EXPERIMENT.LOGIT_STAND = False  # the logit-standardization fork's flag (KD, DKD, MLKD)
CFG.EXPERIMENT.SEED = 0  # plugin: seeded runs; -1 leaves the RNGs alone
CFG.EXPERIMENT.DETERMINISTIC = True  # plugin: deterministic kernels where the hardware allows

# Dataset
CFG.DATASET = CN()
CFG.DATASET.TYPE = "cifar100"
CFG.DATASET.NUM_WORKERS = 2
CFG.DATASET.TEST = CN()
CFG.DATASET.TEST.BATCH_SIZE = 64
CFG.DATASET.ROOT = "./data"  # plugin: where the dataset lies, in its publisher's layout
CFG.DATASET.IMAGE_SIZE = 224  # plugin: train crop / test centre crop
CFG.DATASET.GROUP = ""  # plugin: ImageNet WordNet group for DATASET.TYPE imagenet_group
# plugin: imagenet_group's classifier: "group" (the group's classes) or "full" (ImageNet's 1000 classes, the
# group's images only, as the authors train a group; Table 3's configs)
CFG.DATASET.IMAGENET_HEAD = "group"
CFG.DATASET.MAX_BAD_FRACTION = 0.01  # plugin: unreadable images tolerated per epoch before stopping
CFG.DATASET.DOWNLOAD = False  # plugin: let torchvision download where it can
CFG.DATASET.DRAFT_DECODE = True  # plugin: decode large JPEGs at reduced size (PIL draft mode)
CFG.DATASET.SPLIT_SEED = 27  # plugin: seed of a split the plugin draws (Caltech-101; the authors' 27)
CFG.DATASET.SPLIT_FILE = ""  # plugin: reuse a saved split (caltech101_split.json of an earlier run)
CFG.DATASET.DECODE_ON_DEVICE = False  # plugin: workers read file bytes; JPEG decode + train view on the device
CFG.DATASET.NORMALIZE_ON_DEVICE = False  # plugin: loaders yield uint8, the trainer normalises on its device
# (a quarter of the bytes through workers and host-to-device copies; the plugin's trainer only: mdistiller's
# own trainer feeds images to the model as they come)
CFG.DATASET.DROP_LAST = False  # plugin: drop the last partial batch (fixed shapes, e.g. for SOLVER.COMPILE)
CFG.DATASET.PERSISTENT_WORKERS = False  # plugin: keep loader workers between epochs (--resume then not bit-exact)

# Distiller
CFG.DISTILLER = CN()
CFG.DISTILLER.TYPE = "NONE"  # Vanilla as default
CFG.DISTILLER.TEACHER = "ResNet50"
CFG.DISTILLER.STUDENT = "resnet32"
CFG.DISTILLER.TEACHER_CKPT = ""  # plugin: visual teacher weights (weights_only load)
CFG.DISTILLER.STUDENT_CKPT = ""  # plugin: optional pretrained student weights from a local file

# Solver
CFG.SOLVER = CN()
CFG.SOLVER.TRAINER = "base"
CFG.SOLVER.BATCH_SIZE = 64
CFG.SOLVER.EPOCHS = 240
CFG.SOLVER.LR = 0.05
CFG.SOLVER.LR_DECAY_STAGES = [150, 180, 210]
CFG.SOLVER.LR_DECAY_RATE = 0.1
CFG.SOLVER.WEIGHT_DECAY = 0.0001
CFG.SOLVER.MOMENTUM = 0.9
CFG.SOLVER.TYPE = "SGD"  # or AdamW (plugin)
CFG.SOLVER.SCHEDULER = "step"  # plugin: step (mdistiller's LR_DECAY_STAGES) or cosine (with WARMUP_EPOCHS)
CFG.SOLVER.WARMUP_EPOCHS = 0  # plugin, cosine: linear warm-up epochs
CFG.SOLVER.MIN_LR = 0.0  # plugin, cosine: the last epoch's floor
CFG.SOLVER.BETAS = [0.9, 0.999]  # plugin, AdamW
CFG.SOLVER.AMP = True  # plugin: bf16 autocast (and channels_last) on CUDA; ignored on CPU
CFG.SOLVER.COMPILE = False  # plugin: torch.compile the student (its forward; state_dict keys unchanged)

# Log
CFG.LOG = CN()
CFG.LOG.TENSORBOARD_FREQ = 500
CFG.LOG.SAVE_CHECKPOINT_FREQ = 40
CFG.LOG.PREFIX = "./output"
CFG.LOG.WANDB = False
# plugin: which epoch the `best` checkpoint is: best_test_acc (mdistiller), best_val_loss (the authors:
# the lowest validation loss, checked every EVAL_FREQ epochs; the validation set is the test set but
# for Waterbirds, whose is split 1) or final
CFG.LOG.SELECT = "best_test_acc"
CFG.LOG.EVAL_FREQ = 5

# ------------------------------------- mdistiller's own distillers (its zoo runs through the plugin and the bridge)
# The plugin's methods (KD, DKD, RKD, MLKD, LAVID, MAKD, FITNET_MLLM, CRD_MLLM, ...) declare their nodes
# in their distiller class (NODE, DEFAULTS); get_cfg_defaults() adds them from the registry.
CFG.AT = CN()
CFG.AT.P = 2
CFG.AT.LOSS = CN()
CFG.AT.LOSS.CE_WEIGHT = 1.0
CFG.AT.LOSS.FEAT_WEIGHT = 1000.0

CFG.FITNET = CN()
CFG.FITNET.HINT_LAYER = 2
CFG.FITNET.INPUT_SIZE = (32, 32)
CFG.FITNET.LOSS = CN()
CFG.FITNET.LOSS.CE_WEIGHT = 1.0
CFG.FITNET.LOSS.FEAT_WEIGHT = 100.0

CFG.KDSVD = CN()
CFG.KDSVD.K = 1
CFG.KDSVD.LOSS = CN()
CFG.KDSVD.LOSS.CE_WEIGHT = 1.0
CFG.KDSVD.LOSS.FEAT_WEIGHT = 1.0

CFG.OFD = CN()
CFG.OFD.LOSS = CN()
CFG.OFD.LOSS.CE_WEIGHT = 1.0
CFG.OFD.LOSS.FEAT_WEIGHT = 0.001
CFG.OFD.CONNECTOR = CN()
CFG.OFD.CONNECTOR.KERNEL_SIZE = 1

CFG.NST = CN()
CFG.NST.LOSS = CN()
CFG.NST.LOSS.CE_WEIGHT = 1.0
CFG.NST.LOSS.FEAT_WEIGHT = 50.0

CFG.PKT = CN()
CFG.PKT.LOSS = CN()
CFG.PKT.LOSS.CE_WEIGHT = 1.0
CFG.PKT.LOSS.FEAT_WEIGHT = 30000.0

CFG.SP = CN()
CFG.SP.LOSS = CN()
CFG.SP.LOSS.CE_WEIGHT = 1.0
CFG.SP.LOSS.FEAT_WEIGHT = 3000.0

CFG.VID = CN()
CFG.VID.LOSS = CN()
CFG.VID.LOSS.CE_WEIGHT = 1.0
CFG.VID.LOSS.FEAT_WEIGHT = 1.0
CFG.VID.EPS = 1e-5
CFG.VID.INIT_PRED_VAR = 5.0
CFG.VID.INPUT_SIZE = (32, 32)

CFG.CRD = CN()
CFG.CRD.MODE = "exact"
CFG.CRD.FEAT = CN()
CFG.CRD.FEAT.DIM = 128
CFG.CRD.FEAT.STUDENT_DIM = 256
CFG.CRD.FEAT.TEACHER_DIM = 256
CFG.CRD.LOSS = CN()
CFG.CRD.LOSS.CE_WEIGHT = 1.0
CFG.CRD.LOSS.FEAT_WEIGHT = 0.8
CFG.CRD.NCE = CN()
CFG.CRD.NCE.K = 16384
CFG.CRD.NCE.MOMENTUM = 0.5
CFG.CRD.NCE.TEMPERATURE = 0.07

CFG.REVIEWKD = CN()
CFG.REVIEWKD.CE_WEIGHT = 1.0
CFG.REVIEWKD.REVIEWKD_WEIGHT = 1.0
CFG.REVIEWKD.WARMUP_EPOCHS = 20
CFG.REVIEWKD.SHAPES = [1, 8, 16, 32]
CFG.REVIEWKD.OUT_SHAPES = [1, 8, 16, 32]
CFG.REVIEWKD.IN_CHANNELS = [64, 128, 256, 256]
CFG.REVIEWKD.OUT_CHANNELS = [64, 128, 256, 256]
CFG.REVIEWKD.MAX_MID_CHANNEL = 512
CFG.REVIEWKD.STU_PREACT = False

# DOT (upstream mdistiller) keeps merging
CFG.SOLVER.DOT = CN()
CFG.SOLVER.DOT.DELTA = 0.075

def _node(defaults: dict) -> CN:
    return CN({k: _node(v) if isinstance(v, dict) else copy.deepcopy(v) for k, v in defaults.items()})


#: the configs shipped with the package (the repository's configs/ is a link to them)
PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"


def resolve_config_path(path: str) -> str:
    """``path`` as given when it exists; else a repository-relative name (``configs/lavid/cub/res18.yaml``)
    found among the shipped configs, so the same command works from any folder and from a wheel."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return str(p)
    parts = p.parts
    if parts and parts[0] == "configs" and (PACKAGE_CONFIGS.joinpath(*parts[1:])).is_file():
        return str(PACKAGE_CONFIGS.joinpath(*parts[1:]))
    return str(p)


def get_cfg_defaults() -> CN:
    """mdistiller's schema (:data:`CFG`) plus the node each registered distiller declares
    (``NODE``/``DEFAULTS``), as detectron2's ``add_*_config``."""
    from .distillers import method_nodes
    from .errors import LavidError

    cfg = CFG.clone()
    for node, defaults in method_nodes().items():
        if node in cfg:
            raise LavidError(f"config node {node} is declared twice: in lavid_plugin.config and by a distiller")
        cfg[node] = _node(defaults)
    return cfg


def _read_yaml(path: str) -> dict:
    """The YAML file as a mapping; a syntax error names the file and line."""
    import yaml

    from .errors import LavidError

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise LavidError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LavidError(f"{path}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise LavidError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LavidError(f"{path}: the top level must be a mapping of config nodes (EXPERIMENT:, DATASET:, ...), "
                         f"got a {type(data).__name__}")
    return data


_warned_renames: set = set()


def rename_deprecated_keys(flat_keys, where: str):
    """``flat_keys`` (dotted names) with deprecated keys replaced by their new names; warns once per key
    and process."""
    from .distillers import renamed_keys
    from .utils import get_logger

    renames = renamed_keys()
    out = []
    for key in flat_keys:
        new = renames.get(key)
        if new is not None and key not in _warned_renames:
            _warned_renames.add(key)
            get_logger().warning(f"{where}: {key} is deprecated, read as {new} (rename it)")
        out.append(new or key)
    return out


def _rename_in_dict(data: dict, where: str) -> dict:
    """A YAML mapping with its deprecated keys moved to their new names."""
    flat: dict = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(data)
    out: dict = {}
    for key, value in zip(rename_deprecated_keys(flat, where), flat.values()):
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _floats_where_float(defaults: CN, data: dict, prefix: str = "") -> dict:
    """``data`` with ints turned into floats where the default is a float (``LAVID_WEIGHT: 20``):
    yacs refuses that type mismatch, a researcher means the number."""
    out = {}
    for k, v in data.items():
        d = defaults.get(k) if isinstance(defaults, CN) else None
        if isinstance(v, dict) and isinstance(d, CN):
            out[k] = _floats_where_float(d, v, f"{prefix}{k}.")
        elif isinstance(d, float) and isinstance(v, int) and not isinstance(v, bool):
            out[k] = float(v)
        else:
            out[k] = v
    return out


def _opts_floats_where_float(defaults: CN, opts: list) -> list:
    out = list(opts)
    for i in range(0, len(out) - 1, 2):
        node = defaults
        for part in str(out[i]).split("."):
            node = node.get(part) if isinstance(node, CN) else None
        value = CN._decode_cfg_value(out[i + 1]) if isinstance(out[i + 1], str) else out[i + 1]
        if isinstance(node, float) and isinstance(value, int) and not isinstance(value, bool):
            out[i + 1] = float(value)
    return out


def cfg_from_dict(data: dict, where: str = "config") -> CN:
    """The defaults with ``data`` (nested dicts, as a YAML holds them) merged over them."""
    from .errors import LavidError

    cfg = get_cfg_defaults()
    try:
        cfg.merge_from_other_cfg(CN(_floats_where_float(cfg, _rename_in_dict(data, where))))
    except (KeyError, ValueError, AssertionError) as e:
        raise LavidError(f"{where}: {e.args[0] if e.args else e}") from None
    return cfg


def load_cfg(path: str | None = None, opts: list | None = None, freeze: bool = True) -> CN:
    """Defaults, then the YAML file, then ``KEY VALUE`` overrides; an unknown key names itself, a
    YAML error its line; an int where the default is a float is taken as that float."""
    from .errors import LavidError

    cfg = get_cfg_defaults()
    if path:
        path = resolve_config_path(path)
    if opts and len(opts) % 2:
        raise LavidError(f"overrides must be KEY VALUE pairs, got an odd list: {opts}")
    if opts:
        opts = [k if i % 2 else rename_deprecated_keys([k], "overrides")[0] for i, k in enumerate(opts)]
    for where, merge in ((path, lambda: cfg.merge_from_other_cfg(
                              CN(_floats_where_float(cfg, _rename_in_dict(_read_yaml(path), str(path)))))),
                         ("overrides", lambda: cfg.merge_from_list(_opts_floats_where_float(cfg, opts)))):
        if not (path if where == path else opts):
            continue
        try:
            merge()
        except (KeyError, ValueError, AssertionError) as e:
            msg = str(e.args[0] if e.args else e)
            if msg.startswith("Non-existent"):  # yacs: KeyError from a file, AssertionError from a list
                raise LavidError(f"{where}: unknown config key {msg.split(': ')[-1]}") from None
            raise LavidError(f"{where}: {msg}") from None
    if freeze:
        cfg.freeze()
    return cfg
