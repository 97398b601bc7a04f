"""`weak-fold-<f>` (f = 0 .. FOLDS-1): the weak models of `calibrate`'s cross-fitting, one stage
per fold, so the resolver runs (and the cache reuses) each like any other stage.

weak_train's questions are cut into FOLDS folds (seeded by question); fold f's weak model is
trained on the ground truth of the other folds, early-stopping on a question slice of them
(`inner_val`), and predicts all of weak_train. `calibrate` keeps each fold's predictions on the
fold's own questions: the out-of-fold ("raw") weak labels of weak_train.

Outputs (in `<cache>/weak-fold/<key>/`): preds_weak_train.npy (n_weak_train,) float32;
train_history.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from ..cache import StageDir
from ..tasks import hash_seed
from .base import Stage, StageContext
from .fitting import fit_stage

FOLDS = 5


def fold_name(f: int) -> str:
    return f"weak-fold-{f}"


def fold_of(ctx: StageContext) -> np.ndarray:
    """int (n_weak_train,): the cross-fitting fold of each weak_train example (one per question)."""
    return np.array([hash_seed(ctx.seed, "calibrate", e.question_id) % FOLDS for e in ctx.splits.examples["weak_train"]])


def inner_val(ctx: StageContext) -> np.ndarray:
    """bool (n_weak_train,): the question slice a fold's weak model early-stops on (out of its held fold)."""
    return np.array([hash_seed(ctx.seed, "calibrate-val", e.question_id) % 5 == 0
                     for e in ctx.splits.examples["weak_train"]])


def run_fold(f: int, ctx: StageContext, deps: Mapping[str, StageDir] | None = None) -> StageDir:
    """The weak model of fold `f`: trained on the other folds' weak_train ground truth, P(y=1) on all of weak_train."""
    y = ctx.splits.labels("weak_train").astype(np.float32)
    held, val = fold_of(ctx) == f, inner_val(ctx)
    tr, va = np.flatnonzero(~held & ~val), np.flatnonzero(~held & val)
    return fit_stage(ctx, "weak-fold", ctx.weak, train_split="weak_train", train_labels=y[tr], train_idx=tr,
                     val_split="weak_train", val_labels=y[va], val_idx=va, predict=("weak_train",),
                     extra={"fold": f, "folds": FOLDS})


STAGES = tuple(Stage(fold_name(f), (), partial(run_fold, f),
                     f"calibrate's cross-fitting: the weak model without fold {f} of weak_train, P(y=1) on weak_train")
               for f in range(FOLDS))
