"""`ceiling`: the strong model trained on w2s ground truth, the reference students are measured against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cache import StageDir
from .base import Stage, StageContext
from .training import fit_stage


def run_ceiling(ctx: StageContext, deps: Mapping[str, StageDir] | None = None) -> StageDir:
    """Trained on w2s_train ground truth, early stopping on w2s_val ground truth (the reference
    may see what students may not)."""
    return fit_stage(ctx, "ceiling", ctx.strong, train_split="w2s_train",
                     train_labels=ctx.splits.labels("w2s_train").astype(np.float32),
                     val_split="w2s_val", val_labels=ctx.splits.labels("w2s_val").astype(np.float32))


STAGE = Stage("ceiling", (), run_ceiling, "the strong model on w2s_train ground truth (reference)")
