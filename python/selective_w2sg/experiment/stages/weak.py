"""`weak`: the weak supervisor, trained on weak_train ground truth."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cache import StageDir
from .base import Stage, StageContext
from .fitting import fit_stage, weak_val_mask


def run_weak(ctx: StageContext, deps: Mapping[str, StageDir] | None = None) -> StageDir:
    """Trained on weak_train ground truth, early stopping on a question-level slice of it (so it
    never sees w2s ground truth); P(y=1) on every split."""
    y = ctx.splits.labels("weak_train").astype(np.float32)
    val = weak_val_mask(ctx.splits, ctx.seed)
    tr_idx, va_idx = np.flatnonzero(~val), np.flatnonzero(val)
    return fit_stage(ctx, "weak", ctx.weak, train_split="weak_train", train_labels=y[tr_idx], train_idx=tr_idx,
                     val_split="weak_train", val_labels=y[va_idx], val_idx=va_idx,
                     predict=("weak_train", "w2s_train", "w2s_val", "test"))


STAGE = Stage("weak", (), run_weak, "the weak supervisor on weak_train ground truth; P(y=1) on every split")
