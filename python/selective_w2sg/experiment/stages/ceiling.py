"""`ceiling`: the strong model trained on w2s ground truth, the reference students are measured against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cache import StageDir
from .base import Stage, StageContext
from .encode import anchor_for
from .fitting import Anchor, Budget, fit_stage
from .tune import budget_grid, cross_validate_heads

FOLDS = 5


def ceiling_budget(ctx: StageContext, anchor: Anchor) -> Budget:
    """The ceiling's head: of every anchored and plain head of `tune.budget_grid`, the one with
    the best held-out question-level accuracy over 5 question folds of w2s_train ground truth
    (the reference may see it; ties go to the earlier, more anchored head). Accuracy, not
    log-loss: the zero-shot anchor can be right and overconfident (a cosine softmax at a low
    temperature), and log-loss then prefers a worse-ranking head that is merely better
    calibrated."""
    y = ctx.splits.labels("w2s_train").astype(np.float64)
    acc = cross_validate_heads(ctx, anchor, "w2s_train", y, y, FOLDS, "ceiling").mean(1)
    return budget_grid()[int(np.flatnonzero(acc >= acc.max() - 1e-12)[0])]


def run_ceiling(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    """Trained on w2s_train ground truth (the reference may see what students may not). Plain
    heads and full / lora mode early-stop on w2s_val ground truth. On anchored probe runs the
    ceiling is the same convex fit as the students', its head (anchored or plain, and C)
    cross-validated on w2s_train ground truth, so it reaches what the features hold even where the
    anchor is wrong (a fixed small learning rate left it below a plain logistic probe)."""
    anchor = anchor_for(ctx, deps["encode"])
    budget = None if anchor is None or ctx.train.mode != "probe" else ceiling_budget(ctx, anchor)
    return fit_stage(ctx, "ceiling", ctx.strong, train_split="w2s_train",
                     train_labels=ctx.splits.labels("w2s_train").astype(np.float32),
                     val_split="w2s_val", val_labels=ctx.splits.labels("w2s_val").astype(np.float32),
                     anchor=anchor, budget=budget, early_stop=budget is None)


STAGE = Stage("ceiling", ("encode",), run_ceiling, "the strong model on w2s_train ground truth (reference)")
