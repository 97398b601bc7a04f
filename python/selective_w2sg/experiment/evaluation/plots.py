"""The results plot of a summary (matplotlib, written atomically)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...graph.io import atomic_path


def plot_summary(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of test accuracy (mean ± se) per model, PGR in the labels, and (with re-splits)
    the paired contrasts with their 95% CIs beside it; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["models"])
    rows = [summary["models"][n] for n in names]
    contrasts = summary.get("contrasts") or []
    ncols = 2 if contrasts else 1
    fig, axes = plt.subplots(1, ncols, figsize=(1.0 * len(names) + 2 + 5 * (ncols - 1), 4.2), squeeze=False)
    ax = axes[0][0]
    oracle = set(summary.get("oracle", []))
    colors = ["#999999" if n == "weak" else "#333333" if n == "ceiling" else "#7a7a3a" if n == "zero_shot"
              else "#d59a3a" if n in oracle else "#3a7bd5" for n in names]
    ax.bar(range(len(names)), [r["accuracy"] for r in rows], yerr=[r["accuracy_se"] for r in rows], color=colors,
           capsize=4)
    ax.set_xticks(range(len(names)), [f"{n}*" if n in oracle else n for n in names], rotation=45, ha="right")
    for i, r in enumerate(rows):
        if "pgr" in r and math.isfinite(r["pgr"]):
            ax.annotate(f"{r['pgr']:.2f}", (i, r["accuracy"]), ha="center", va="bottom",
                        xytext=(0, 6), textcoords="offset points", fontsize=7)
    accs = [r["accuracy"] for r in rows if math.isfinite(r["accuracy"])]
    lo = max(0.0, min(accs) - 0.1) if accs else 0.0
    ax.set_ylim(lo, 1.0)
    ax.set_ylabel("test accuracy (labels: PGR)")
    ax.set_title(f"{summary['task']} ({len(summary['seeds'])} re-split(s)){'; * oracle' if oracle else ''}")
    if contrasts:
        cx = axes[0][1]
        labels = [f"{c['a']} - {c['b']}" for c in contrasts]
        means = [100 * c["mean"] for c in contrasts]
        err = [[100 * (c["mean"] - c["ci95"][0]) for c in contrasts], [100 * (c["ci95"][1] - c["mean"]) for c in contrasts]]
        y = list(range(len(contrasts)))[::-1]
        cx.errorbar(means, y, xerr=err, fmt="o", color="#3a7bd5", capsize=4)
        cx.axvline(0, color="#999999", lw=1)
        cx.set_yticks(y, labels, fontsize=8)
        cx.set_xlabel("paired accuracy difference, points (95% CI)")
        cx.set_title("contrasts")
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return p
