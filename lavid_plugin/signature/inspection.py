"""Summaries of a signature: shape, per-question entropy, near-identical classes, a heatmap PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from .llm_signature import LLMSignature


def question_entropy(sig: LLMSignature) -> torch.Tensor:
    """[K, Q] entropy (nats) of each class's answer distribution."""
    p = sig.probs.clamp_min(1e-12)
    cols = [-(p[:, sig.question_slice(q)] * p[:, sig.question_slice(q)].log()).sum(1) for q in range(sig.num_questions)]
    return torch.stack(cols, dim=1)


def near_identical_pairs(sig: LLMSignature, k: int = 5) -> list[tuple[str, str, float]]:
    """The ``k`` closest pairs of classes (RMS difference of their signatures)."""
    x = sig.probs
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
    """Classes x questions (the paper's Fig. 2 overview): each cell's colour is the option the class
    most likely chooses, its saturation that option's probability (white: unsure). Questions are
    numbered from 1, as in ``lavid signature inspect``'s text; the figure grows with K and Q."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Patch

    from ..plots import MIN_FONT, number_ticks, pyplot, save_png, shorten, wrap

    plt = pyplot()
    K, Q = min(sig.num_classes, max_classes), sig.num_questions
    choice = torch.stack([sig.probs[:K, sig.question_slice(q)].argmax(1) for q in range(Q)], 1)
    conf = torch.stack([sig.probs[:K, sig.question_slice(q)].max(1).values for q in range(Q)], 1)
    cmap = plt.get_cmap("tab10")
    rgb = torch.tensor([cmap(int(c) % 10)[:3] for c in choice.flatten()]).view(K, -1, 3)
    img = rgb * conf.unsqueeze(-1) + (1 - conf.unsqueeze(-1))  # pale = unsure
    names = [shorten(n) for n in sig.class_names[:K]]
    label_w = max(len(n) for n in names) * 0.075 + 0.6
    height = 1.8 + max(2.5, 0.17 * K)
    fig, ax = plt.subplots(figsize=(label_w + max(4.5, 0.22 * Q) + 1.6, height))
    ax.imshow(img.numpy(), aspect="auto", interpolation="nearest")
    xt = number_ticks(Q)
    ax.set_xticks(xt, [str(q + 1) for q in xt], fontsize=MIN_FONT)
    yt = number_ticks(K, max_labels=250)
    ax.set_yticks(yt, [names[k] for k in yt], fontsize=MIN_FONT)
    ax.set_xlabel("question (numbered as in the text summary)", fontsize=9)
    ax.set_ylabel("class", fontsize=9)
    shown = "" if K == sig.num_classes else f" (first {K} of {sig.num_classes})"
    model = sig.provenance.get("answering_model") or sig.provenance.get("source") or ""
    ax.set_title(wrap(f"Signature{': ' + str(model) if model else ''}: {K} classes{shown} x {Q} questions. "
                      f"Colour: the option each class most likely picks; saturation: its probability",
                      max(60, int(12 * (label_w + max(4.5, 0.22 * Q))))), fontsize=9)
    m = max(sig.option_counts)
    handles = [Patch(color=cmap(o % 10), label=f"option {o + 1}") for o in range(min(m, 10))]
    ax.legend(handles=handles, title="chosen option", fontsize=MIN_FONT, title_fontsize=MIN_FONT,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    sat = LinearSegmentedColormap.from_list("saturation", [(1, 1, 1), (0.3, 0.3, 0.3)])
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=sat, norm=plt.Normalize(1 / m, 1)), ax=ax, fraction=0.03,
                       pad=0.02, location="right", anchor=(0.0, 0.0), shrink=min(0.5, 3.0 / height))
    bar.set_label("probability of the chosen option", fontsize=MIN_FONT)
    bar.ax.tick_params(labelsize=MIN_FONT)
    return save_png(fig, path)


def read_attributes(path, sig: LLMSignature) -> dict[str, list[int]]:
    """``{class name: [correct option number (1-based) per question]}`` from a JSON file, checked
    against the signature's classes and option counts; errors name the class and question."""
    import json

    from ..errors import LavidError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LavidError(f"{path}: cannot read as JSON ({e})") from None
    if not isinstance(data, dict):
        raise LavidError(f"{path}: expected {{class name: [correct option number per question]}}")
    missing = [n for n in sig.class_names if n not in data]
    if missing:
        raise LavidError(f"{path}: no attributes for class(es) {missing[:5]}")
    counts = sig.option_counts
    for n in sig.class_names:
        row = data[n]
        if not isinstance(row, list) or len(row) != len(counts):
            raise LavidError(f"{path}: class {n!r} needs {len(counts)} option numbers, one per question")
        bad = [q + 1 for q, (a, m) in enumerate(zip(row, counts)) if not isinstance(a, int) or not 1 <= a <= m]
        if bad:
            raise LavidError(f"{path}: class {n!r}: question(s) {bad} have no option with that number")
    return {n: data[n] for n in sig.class_names}


def attribute_agreement(sig: LLMSignature, attributes: dict[str, list[int]]) -> tuple[int, int]:
    """How many (class, question) pairs the signature's most probable option is the correct one."""
    hits = 0
    for k, n in enumerate(sig.class_names):
        for q in range(sig.num_questions):
            hits += int(sig.probs[k, sig.question_slice(q)].argmax()) + 1 == attributes[n][q]
    return hits, sig.num_classes * sig.num_questions


def question_png(sig: LLMSignature, question: int, path: str | Path, classes: Sequence[str] | None = None,
                 max_classes: int = 12) -> Path:
    """One question's option distribution for chosen classes (the paper's Fig. 2 view): a heatmap,
    rows = classes, columns = options, each cell the probability. ``question`` is 1-based, as in the
    text summary; the figure grows with the number of classes and options."""
    from ..errors import LavidError
    from ..plots import MIN_FONT, pyplot, save_png, shorten, wrap

    plt = pyplot()
    if sig.provenance.get("kind") in ("embedding", "word_embedding"):
        raise LavidError("an embedding signature has no questions to draw")
    if not 1 <= question <= sig.num_questions:
        raise LavidError(f"--question must be in 1..{sig.num_questions}, got {question}")
    names = list(classes) if classes else sig.class_names[:max_classes]
    unknown = [n for n in names if n not in sig.class_names]
    if unknown:
        raise LavidError(f"class(es) {unknown} are not in the signature")
    rows = torch.stack([sig.probs[sig.class_names.index(n), sig.question_slice(question - 1)] for n in names])
    q = sig.questions[question - 1] if sig.questions else None
    options = list(q.options) if q else [str(i + 1) for i in range(rows.shape[1])]
    labels = [f"{i + 1}. {shorten(o, 22)}" for i, o in enumerate(options)]
    short = [shorten(n) for n in names]
    label_w = max(len(n) for n in short) * 0.075 + 0.5
    height = 2.2 + 0.34 * len(names)
    fig, ax = plt.subplots(figsize=(label_w + 1.6 + 1.05 * len(options), height))
    im = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            ax.text(j, i, f"{float(rows[i, j]):.2f}", ha="center", va="center", fontsize=MIN_FONT,
                    color="white" if rows[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(options)), labels, rotation=30, ha="right", fontsize=MIN_FONT)
    ax.set_yticks(range(len(names)), short, fontsize=MIN_FONT)
    text = f"Question {question} of {sig.num_questions}" + (f": {q.text}" if q else "")
    ax.set_title(wrap(text, max(40, int(10 * (label_w + 1.05 * len(options))))), fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03, shrink=min(1.0, 5.0 / height), anchor=(0.0, 1.0))
    bar.set_label("probability of the option", fontsize=MIN_FONT)
    bar.ax.tick_params(labelsize=MIN_FONT)
    return save_png(fig, path)
