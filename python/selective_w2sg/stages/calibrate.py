"""`calibrate`: how often a weak label of a given confidence is right, measured on data the weak
model neither trained nor early-stopped on, for each kind of label a student may fall back to.

Cross-fitting over weak_train: its questions are cut into 5 folds; for each fold a weak model is
trained on the other four (early-stopping on a question slice of them) and predicts the fold. The
out-of-fold predictions are the "raw" weak labels of weak_train; spreading them over the kNN
graph of the weak_train embeddings (the same k, alpha and centring as the `smooth` stage) gives
their "smoothed" kind. `select` fits one isotonic map per kind, from confidence max(p, 1-p) to
P(the hard label is right), and compares P(IK) with the map of the label it would replace.

Outputs: oof_raw.npy, oof_smoothed.npy (n_weak_train,) float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..tasks import hash_seed
from .base import Stage, StageContext
from .smooth import spread_weak_labels
from .training import fit_stage

FOLDS = 5


def run_calibrate(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode = deps["encode"]
    sel = ctx.selective
    config = {"folds": FOLDS, "k": sel.k, "alpha": sel.alpha, "iters": sel.smooth_iters, "method": sel.graph_method,
              "center": sel.graph_center, "seed": ctx.seed, "train": ctx.train.resolved().to_dict(),
              "weak": ctx.weak.fingerprint, **ctx.numerics}
    inputs = {"encode": encode.path.name, "weak_train": ctx.splits.fingerprint("weak_train")}

    def compute(w: Any) -> dict[str, Any]:
        examples = ctx.splits.examples["weak_train"]
        y = ctx.splits.labels("weak_train").astype(np.float32)
        fold = np.array([hash_seed(ctx.seed, "calibrate", e.question_id) % FOLDS for e in examples])
        inner_val = np.array([hash_seed(ctx.seed, "calibrate-val", e.question_id) % 5 == 0 for e in examples])
        oof = np.full(len(examples), np.nan, np.float32)
        for f in range(FOLDS):
            held = fold == f
            tr, va = np.flatnonzero(~held & ~inner_val), np.flatnonzero(~held & inner_val)
            d = fit_stage(ctx, "weak-fold", ctx.weak, train_split="weak_train", train_labels=y[tr], train_idx=tr,
                          val_split="weak_train", val_labels=y[va], val_idx=va, predict=("weak_train",),
                          extra={"fold": f, "folds": FOLDS})
            oof[held] = d.npy("preds_weak_train")[held]
        smoothed, info = spread_weak_labels(ctx, encode, examples, oof)
        w.npy("oof_raw", oof)
        w.npy("oof_smoothed", smoothed)
        right = lambda p: float(np.mean((p > 0.5) == (y == 1)))  # noqa: E731
        return {"oof_raw_accuracy": right(oof), "oof_smoothed_accuracy": right(smoothed), "graph": info}

    return run_cached(ctx.cache_root, "calibrate", config, inputs, compute, force=ctx.force)


STAGE = Stage("calibrate", ("encode",), run_calibrate,
              "cross-fitted weak labels on weak_train, raw and smoothed, for calibration")
