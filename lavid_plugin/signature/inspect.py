"""Summaries of a signature: shape, per-question entropy, near-identical classes, a heatmap PNG."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .signature import LLMSignature


def question_entropy(sig: LLMSignature) -> torch.Tensor:
    """[K, Q] entropy (nats) of each class's answer distribution."""
    p = sig.targets.clamp_min(1e-12)
    cols = [-(p[:, sig.question_slice(q)] * p[:, sig.question_slice(q)].log()).sum(1) for q in range(sig.num_questions)]
    return torch.stack(cols, dim=1)


def near_identical_pairs(sig: LLMSignature, k: int = 5) -> list[tuple[str, str, float]]:
    """The ``k`` closest pairs of classes (RMS difference of their signatures)."""
    x = sig.targets
    d = torch.cdist(x, x) / math.sqrt(x.shape[1])
    d.fill_diagonal_(float("inf"))
    iu = torch.triu_indices(len(x), len(x), offset=1)
    vals = d[iu[0], iu[1]]
    top = torch.topk(vals, min(k, len(vals)), largest=False)
    return [(sig.class_names[iu[0, i]], sig.class_names[iu[1, i]], float(v)) for v, i in zip(top.values, top.indices)]


def summary(sig: LLMSignature, k: int = 5) -> str:
    ent = question_entropy(sig)
    mean_q = ent.mean(0)
    counts = sig.option_counts
    m = str(counts[0]) if len(set(counts)) == 1 else f"variable ({min(counts)}-{max(counts)})"
    lines = [f"classes K={sig.num_classes}  questions Q={sig.num_questions}  options M={m}  dim={sig.dim}",
             f"provenance: model={sig.provenance.get('answering_model')} source={sig.provenance.get('source')} "
             f"temperature={sig.provenance.get('temperature')}",
             f"mean answer entropy: {float(ent.mean()):.3f} nats",
             "lowest-entropy questions (most confident answers):"]
    for q in torch.argsort(mean_q)[:k].tolist():
        text = sig.questions[q].text if sig.questions else f"question {q + 1}"
        lines.append(f"  Q{q + 1:<3d} H={float(mean_q[q]):.3f}  {text}")
    lines.append("closest class pairs (RMS signature difference):")
    for a, b, v in near_identical_pairs(sig, k):
        lines.append(f"  {v:.4f}  {a} <-> {b}")
    return "\n".join(lines)


def heatmap_png(sig: LLMSignature, path: str | Path, max_classes: int = 200) -> Path:
    """Classes x questions: the chosen option (colour) shaded by its probability (the paper's Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils import atomic_path

    K = min(sig.num_classes, max_classes)
    choice = torch.stack([sig.targets[:K, sig.question_slice(q)].argmax(1) for q in range(sig.num_questions)], 1)
    conf = torch.stack([sig.targets[:K, sig.question_slice(q)].max(1).values for q in range(sig.num_questions)], 1)
    cmap = plt.get_cmap("tab10")
    rgb = torch.tensor([cmap(int(c) % 10)[:3] for c in choice.flatten()]).view(K, -1, 3)
    img = rgb * conf.unsqueeze(-1) + (1 - conf.unsqueeze(-1))  # pale = unsure
    fig, ax = plt.subplots(figsize=(max(6, sig.num_questions * 0.18), max(4, K * 0.06 + 1)))
    ax.imshow(img.numpy(), aspect="auto", interpolation="nearest")
    ax.set_xlabel("question")
    ax.set_ylabel("class")
    if K <= 40:
        ax.set_yticks(range(K), sig.class_names[:K], fontsize=6)
    ax.set_title("chosen option (colour) and its probability (saturation)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path.with_suffix(".png")
