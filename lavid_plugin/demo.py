"""``lavid demo``: vanilla vs LaViD on the generated birds, trained back to back, printed side by side."""

from __future__ import annotations

import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "lavid" / "demo"


def _config_dir() -> Path:
    if CONFIGS.is_dir():
        return CONFIGS
    from .errors import LavidError

    raise LavidError(f"demo configs not found at {CONFIGS}; run from a clone installed with pip install -e .")


def run(args) -> int:
    from .config import load_cfg
    from .engine.launch import train

    rows = []
    for label, name in (("vanilla (CE)", "res18_vanilla.yaml"), ("LaViD", "res18.yaml")):
        opts = ["DATASET.ROOT", args.root, "LOG.PREFIX", args.output, "EXPERIMENT.SEED", str(args.seed)]
        if "LaViD" in label:
            opts += ["LAVID.SIGNATURE", str(Path(args.root) / "signature.safetensors")]
        if args.epochs:
            opts += ["SOLVER.EPOCHS", str(args.epochs)]
        cfg = load_cfg(str(_config_dir() / name), opts)
        t0 = time.perf_counter()
        trainer = train(cfg, progress=False)
        final = _last_test_acc(trainer.log_path / "worklog.txt")
        rows.append((label, final, trainer.best_acc, time.perf_counter() - t0, trainer.log_path))
    print()
    print(f"{'method':<14}{'final top-1':>12}{'best top-1':>12}{'seconds':>9}  outputs")
    for label, final, best, sec, path in rows:
        print(f"{label:<14}{final:>12.2f}{best:>12.2f}{sec:>9.1f}  {path}")
    print("(ResNet-18 from scratch on 12 generated bird classes; 'best' is picked on the test set, as mdistiller does)")
    return 0


def _last_test_acc(worklog: Path) -> float:
    accs = [float(line.split(":")[1]) for line in worklog.read_text().splitlines() if line.startswith("test_acc:")]
    return accs[-1] if accs else float("nan")
