"""Figures: the shared matplotlib set-up and PNG writer, and the ablation plot the report writes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .utils import atomic_path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 100) -> Path:
    """``fig`` laid out and written atomically to ``path`` (suffix ``.png``), then closed."""
    fig.tight_layout()
    path = Path(path).with_suffix(".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return path


def ablation_png(path: str | Path, title: str, axis: str, labels: Sequence[str], means: Sequence[float],
                 stds: Sequence[float], kind: str = "line", size: tuple[int, int] = (640, 400),
                 ylabel: str = "top-1 accuracy (%)") -> Path:
    """``kind`` ``line``: numeric x with error bars; ``bar``: one bar per label. ``size``: pixels."""
    plt = pyplot()
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
    return save_png(fig, path)
