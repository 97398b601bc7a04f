"""`ceiling`: the strong model trained on w2s ground truth, the reference students are measured against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cache import StageDir
from .base import Stage, StageContext
from .encode import anchor_for
from .training import fit_stage


def run_ceiling(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    """Trained on w2s_train ground truth, early stopping on w2s_val ground truth (the reference
    may see what students may not). Anchored probe heads start at the zero-shot answer, and that
    start is a candidate of the early stopping."""
    return fit_stage(ctx, "ceiling", ctx.strong, train_split="w2s_train",
                     train_labels=ctx.splits.labels("w2s_train").astype(np.float32),
                     val_split="w2s_val", val_labels=ctx.splits.labels("w2s_val").astype(np.float32),
                     anchor=anchor_for(ctx, deps["encode"]))


STAGE = Stage("ceiling", ("encode",), run_ceiling, "the strong model on w2s_train ground truth (reference)")
