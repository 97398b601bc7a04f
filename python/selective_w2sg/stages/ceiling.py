"""`ceiling`: the strong model trained on w2s ground truth, the reference students are measured against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cache import StageDir
from .base import Stage, StageContext
from .encode import anchor_for
from .training import fit_stage
from .tune import LR_GRID


def run_ceiling(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    """Trained on w2s_train ground truth, early stopping on w2s_val ground truth (the reference
    may see what students may not). Anchored probe heads start at the zero-shot answer, and that
    start is a candidate of the early stopping; their correction's learning rate is chosen from
    the tune grid by the same w2s_val score, so a wrong anchor can be overruled (a fixed small
    rate left the ceiling below a plain logistic probe on the same features)."""
    anchor = anchor_for(ctx, deps["encode"])

    def fit(lr: float | None) -> StageDir:
        return fit_stage(ctx, "ceiling", ctx.strong, train_split="w2s_train",
                         train_labels=ctx.splits.labels("w2s_train").astype(np.float32),
                         val_split="w2s_val", val_labels=ctx.splits.labels("w2s_val").astype(np.float32),
                         anchor=anchor, lr=lr)

    if anchor is None:
        return fit(None)
    runs = [fit(lr) for lr in LR_GRID]

    def score(d: StageDir) -> tuple[float, float]:
        h = d.json("train_history")
        best = max(h, key=lambda e: (e["val_acc"], -e["val_loss"])) if h else {"val_acc": -1.0, "val_loss": 0.0}
        return best["val_acc"], -best["val_loss"]

    return max(runs, key=score)  # ties: the lowest rate (max keeps the first)


STAGE = Stage("ceiling", ("encode",), run_ceiling, "the strong model on w2s_train ground truth (reference)")
