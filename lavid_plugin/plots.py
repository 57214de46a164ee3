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


#: the smallest font any figure uses (points)
MIN_FONT = 8


def shorten(text: str, limit: int = 28) -> str:
    """A label of at most ``limit`` characters, cut with an ellipsis."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def wrap(text: str, width: int = 70) -> str:
    """A title broken into lines of at most ``width`` characters, nothing cut."""
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def number_ticks(n: int, max_labels: int = 50) -> list[int]:
    """Positions 0..n-1 to label (1-based numbers), every k-th so that at most ``max_labels`` show."""
    step = max(1, -(-n // max_labels))
    return list(range(0, n, step))


def save_png(fig, path: str | Path, dpi: int = 100, tight: bool = True, exact_size: bool = False) -> Path:
    """``fig`` laid out (``tight``: by matplotlib's tight layout) and written atomically to ``path``
    (suffix ``.png``), then closed. Unless ``exact_size`` (the figure's own pixel size), the saved
    area grows or shrinks to what is drawn, so no label or colour bar is cut at the edge."""
    if tight:
        fig.tight_layout()
    path = Path(path).with_suffix(".png")
    extra = {} if exact_size else {"bbox_inches": "tight", "pad_inches": 0.1}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, **extra)
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
    ax.set_xlabel(axis, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=MIN_FONT)
    ax.set_title(wrap(title, max(30, int(w / 8))), fontsize=9)
    ax.grid(alpha=0.3)
    return save_png(fig, path, exact_size=True)  # --png-size is the PNG's size
