"""Draw docs/_static/dask_sharding.png (the picture on top of dask.rst).

Run from the repository root: ``python docs/user_guide/dask_figure.py``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "_static" / "dask_sharding.png"


def box(ax, x, y, w, h, text, color, size=10):
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.25", lw=1.2
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, a, b, text=None, color="0.3", offset=(0, 0.12)):
    ax.add_patch(
        FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.3)
    )
    if text:
        mx, my = (a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1]
        ax.text(mx, my, text, ha="center", va="center", fontsize=8.5, color=color)


fig, ax = plt.subplots(figsize=(10, 4.6))
ax.set_xlim(0, 10)
ax.set_ylim(0, 4.6)
ax.axis("off")

box(ax, 0.2, 1.8, 1.7, 1.0, "client\nstates V\n(n x d)", "#dbe9f6")
workers = [3.3, 2.0, 0.7]
for i, y in enumerate(workers):
    box(ax, 3.2, y, 2.6, 1.0, "", "#f3f3f3")
    ax.text(3.3, y + 0.86, f"worker {i + 1}", fontsize=8.5, va="center", color="0.35")
    for j in range(2):
        box(ax, 3.35 + j * 1.2, y + 0.12, 1.05, 0.6, f"shard {2 * i + j + 1}\nK_s x d", "#fde9c8", 8)
    arrow(ax, (1.95, 2.3), (3.15, y + 0.5), "V" if i == 0 else None, "#2b6cb0")
    arrow(ax, (5.85, y + 0.5), (6.9, 2.3), "(L_w, O_w)" if i == 0 else None, "#c05621")
box(ax, 6.95, 1.8, 1.3, 1.0, "merge tree\n(tasks on the\nworkers; exact,\nassociative)", "#e2f0d9", 8.5)
box(ax, 8.55, 1.8, 1.3, 1.0, "finish\n(client)\nlog z, grad E\nclip, eps once", "#e2f0d9", 8.5)
arrow(ax, (8.27, 2.3), (8.52, 2.3))
ax.text(
    5.0,
    0.25,
    "memories stay on the workers after fit;  per step: V out (n x d); the per-worker "
    "states merge as a tree of tasks;\none state (n x (d + 1)) back to the client",
    ha="center",
    fontsize=9,
    color="0.25",
)
ax.text(
    5.0,
    4.45,
    "L = max L_s + log sum exp(L_s - max),   O = sum exp(L_s - L) O_s",
    ha="center",
    fontsize=10,
)
fig.tight_layout()
OUT.parent.mkdir(exist_ok=True)
fig.savefig(OUT, dpi=110)
print(OUT)
