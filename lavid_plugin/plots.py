"""Plots the report writes: an ablation's accuracy against its axis, mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .utils import atomic_path


def ablation_png(path: str | Path, title: str, axis: str, labels: Sequence[str], means: Sequence[float],
                 stds: Sequence[float], kind: str = "line", size: tuple[int, int] = (640, 400),
                 ylabel: str = "top-1 accuracy (%)") -> Path:
    """``kind`` ``line``: numeric x with error bars; ``bar``: one bar per label. ``size``: pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = size
    fig, ax = plt.subplots(figsize=(w / 100, h / 100), dpi=100)
    if kind == "line":
        xs = [float(x) for x in labels]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color="tab:blue")
        ax.set_xticks(xs, [str(x) for x in labels])
    else:
        ax.bar(range(len(labels)), means, yerr=stds, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
        lo = min(m - s for m, s in zip(means, stds))
        hi = max(m + s for m, s in zip(means, stds))
        ax.set_ylim(max(0.0, lo - 0.2 * (hi - lo + 1)), hi + 0.1 * (hi - lo + 1))
    ax.set_xlabel(axis)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path).with_suffix(".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
