"""``lavid demo``: vanilla vs LaViD on the generated birds, trained back to back, printed side by side.

Three rows: vanilla (CE), LaViD with the offline teacher (the shipped questions answered from the class
names by a sentence-embedding model) and, as a reference, LaViD with a teacher that knows the drawn
attributes. ``--seeds N`` runs each row with N seeds and prints mean ± std and the per-seed values.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from .data.demo_birds import DEMO_QUESTIONS, REFERENCE_CONFIDENCE, demo_attributes

CONFIGS = Path(__file__).resolve().parent / "configs" / "lavid" / "demo"  # shipped with the package
#: (label, config, signature file under the demo root, run name)
ROWS = (("vanilla (CE)", "res18_vanilla.yaml", None, "vanilla_res18"),
        ("LaViD, offline teacher", "res18.yaml", "signature.safetensors", "lavid_res18"),
        ("LaViD, teacher that knows the attributes (reference)", "res18.yaml", "reference_signature.safetensors",
         "lavid_reference_res18"))


def prepare_demo_teachers(cfg) -> None:
    """The demo's images and, when ``LAVID.SIGNATURE`` names one of them, its signature files (the
    demo builds its teachers itself; training only reads teacher files)."""
    from .data.demo_birds import ensure_demo_dataset

    if cfg.DATASET.TYPE != "demo_birds":
        return
    root = Path(cfg.DATASET.ROOT)
    if not (root / "classes.json").is_file():
        ensure_demo_dataset(root)
    sig = Path(cfg.LAVID.SIGNATURE) if cfg.LAVID.SIGNATURE else None
    if sig is not None and sig.resolve() == (root / "signature.safetensors").resolve():
        ensure_demo_signature(root)
    if sig is not None and sig.resolve() == (root / "reference_signature.safetensors").resolve():
        ensure_reference_signature(root)


def ensure_demo_signature(root: str | Path, model: str = "minilm") -> Path:
    """The demo's signature, built by the Stage 1 code path: the shipped attribute questions answered
    for each class name by the sentence-embedding backend (an offline CPU language model)."""
    from .signature.embedding import EmbeddingAnswerer
    from .signature.questions import read_questions
    from .signature.llm_signature import LLMSignature

    root = Path(root)
    out = root / "signature.safetensors"
    if out.is_file() and LLMSignature.load(out).provenance.get("scoring") == "statement":
        return out  # (one written before the statement scoring is rebuilt)
    classes = json.loads((root / "classes.json").read_text())["classes"]
    questions, _ = read_questions(DEMO_QUESTIONS)
    sig = EmbeddingAnswerer(model).extract(questions, classes, question_source=str(DEMO_QUESTIONS.name))
    sig.save(out)
    return out


def ensure_reference_signature(root: str | Path) -> Path:
    """The signature of a teacher that knows the drawn attributes: ``REFERENCE_CONFIDENCE`` on each
    question's correct option, the rest spread evenly. It shows the method's headroom, separately
    from how well the offline teacher answers."""
    import torch

    from .signature.questions import read_questions
    from .signature.llm_signature import LLMSignature, offsets_from_counts

    out = Path(root) / "reference_signature.safetensors"
    if out.is_file():
        return out
    questions, _ = read_questions(DEMO_QUESTIONS)
    rows = []
    for name, answers in demo_attributes().items():
        row = []
        for q, a in zip(questions, answers):
            m = q.num_options
            row += [REFERENCE_CONFIDENCE if i + 1 == a else (1 - REFERENCE_CONFIDENCE) / (m - 1) for i in range(m)]
        rows.append(row)
    LLMSignature(list(demo_attributes()), torch.tensor(rows), offsets_from_counts(q.num_options for q in questions),
                 questions=questions, provenance={"source": "demo-attributes", "answering_model": "the drawn attributes",
                                                  "confidence": REFERENCE_CONFIDENCE}).save(out)
    return out


def _config_dir() -> Path:
    if CONFIGS.is_dir():
        return CONFIGS
    from .errors import LavidError

    raise LavidError(f"demo configs not found at {CONFIGS}: the installation is incomplete; reinstall lavid-plugin")


def run_row(args, config: str, signature: str | None, name: str, seed: int) -> tuple[float, float, float]:
    """``(final top-1, best top-1, seconds)`` of one demo run."""
    from .config import load_cfg
    from .engine.launch import train

    opts = ["DATASET.ROOT", args.root, "LOG.PREFIX", args.output, "EXPERIMENT.SEED", str(seed),
            "EXPERIMENT.NAME", name if args.seeds == 1 else f"{name}_seed{seed}"]
    if signature:
        opts += ["LAVID.SIGNATURE", str(Path(args.root) / signature)]
    if args.epochs:
        opts += ["SOLVER.EPOCHS", str(args.epochs)]
    opts += list(getattr(args, "opts", None) or [])
    t0 = time.perf_counter()
    cfg = load_cfg(str(_config_dir() / config), opts)
    prepare_demo_teachers(cfg)
    trainer = train(cfg, progress="lines")  # one line per epoch: a user sees each row move
    return _last_test_acc(trainer.log_path / "worklog.txt"), trainer.best_acc, time.perf_counter() - t0


def teacher_agreement(root: str) -> str:
    from .data.demo_birds import ensure_attributes_file
    from .signature.inspection import attribute_agreement, read_attributes
    from .signature.llm_signature import LLMSignature

    sig = LLMSignature.load(Path(root) / "signature.safetensors")
    hits, total = attribute_agreement(sig, read_attributes(ensure_attributes_file(root), sig))
    return (f"offline teacher ({sig.provenance.get('answering_model')}, {sig.provenance.get('scoring')} scoring): "
            f"its most probable option is the drawn attribute for {hits}/{total} class x question pairs")


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def run(args) -> int:
    if args.seeds < 1:
        from .errors import LavidError

        raise LavidError(f"--seeds must be >= 1, got {args.seeds}")
    seeds = [args.seed + k for k in range(args.seeds)]
    results = []
    from .utils import get_logger

    for row, (label, config, signature, name) in enumerate(ROWS, 1):
        runs = []
        for s in seeds:
            get_logger().info(f"demo row {row}/{len(ROWS)} ({name}), seed {s}")
            runs.append(run_row(args, config, signature, name, s))
        results.append((label, [r[0] for r in runs], [r[1] for r in runs], sum(r[2] for r in runs) / len(runs)))
    head = "final top-1" + (" (mean ± std)" if len(seeds) > 1 else "")
    print(f"\n{'method':<54}{head:>26}{'best top-1':>16}{'s/run':>8}")
    for label, final, best, sec in results:
        print(f"{label:<54}{_cell(final):>26}{_cell(best):>16}{sec:>8.1f}")
    if len(seeds) > 1:
        print(f"per seed ({', '.join(map(str, seeds))}), final top-1:")
        for label, final, _, _ in results:
            print(f"  {label:<52}" + "  ".join(f"{v:6.2f}" for v in final))
    print(teacher_agreement(args.root))
    print(f"(ResNet-18 from scratch on 12 generated bird classes, outputs under {args.output}/demo/; "
          "'best' is picked on the test set, as mdistiller does)")
    return 0


def _last_test_acc(worklog: Path) -> float:
    accs = [float(line.split(":")[1]) for line in worklog.read_text().splitlines() if line.startswith("test_acc:")]
    return accs[-1] if accs else float("nan")
