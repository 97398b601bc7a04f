"""`calibrate`: how often a weak label of a given confidence is right, measured on data the weak
model neither trained nor early-stopped on, for each kind of label a student may fall back to.

Cross-fitting over weak_train: its questions are cut into 5 folds; for each fold a weak model is
trained on the other four (early-stopping on a question slice of them) and predicts the fold. The
out-of-fold predictions are the "raw" weak labels of weak_train.

They also choose how to smooth: each setting of `smooth.smoothing_grid` (graph embedding, k,
alpha; alpha 0 = no smoothing) spreads them over the kNN graph of the weak_train embeddings,
and the question-level accuracy of the spread labels against weak_train's ground truth scores
it. The choice is the simplest setting within one standard error (of the paired per-question
difference) of the best, so spreading is used only where it beats the raw labels by more than
noise; on a graph that carries no signal that is alpha 0, and the labels stay as they were.
The chosen setting's spread labels are the "smoothed" kind. `select` fits one isotonic map per
kind, from confidence max(p, 1-p) to P(the hard label is right), and compares P(IK) with the
map of the label it would replace.

Outputs: oof_raw.npy, oof_smoothed.npy (n_weak_train,) float32; smoothing.json (every setting's
accuracy, the chosen one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..models import model_fingerprint
from ..stats import question_accuracy, simplest_within_one_se
from ..tasks import hash_seed
from .base import Stage, StageContext
from .smooth import finish_smoothed, smoothing_grid, spread_weak_labels
from .fitting import fit_stage

FOLDS = 5


def run_calibrate(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode = deps["encode"]
    sel = ctx.selective
    grid = smoothing_grid(sel)
    config = {"format": 2, "folds": FOLDS, "grid": [asdict(g) for g in grid], "iters": sel.smooth_iters,
              "method": sel.graph_method, "center": sel.graph_center, "output": sel.smoothed_output, "seed": ctx.seed,
              "train": ctx.train.resolved().to_dict(),
              "weak": model_fingerprint(ctx.weak), **ctx.numerics}
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
        _, q = np.unique(np.array([e.question_id for e in examples]), return_inverse=True)
        spread = spread_weak_labels(ctx, encode, examples, oof, grid)
        acc = np.stack([question_accuracy(p, y, q) for p, _ in spread])
        pick, se = simplest_within_one_se(acc, range(len(grid)))  # grid is simplest first
        smoothed = finish_smoothed(sel, spread[pick][0], oof, grid[pick])
        w.npy("oof_raw", oof)
        w.npy("oof_smoothed", smoothed)
        w.json("smoothing", {"chosen": asdict(grid[pick]), "rule": "1-SE, question-level accuracy on weak_train",
                             "settings": [{**asdict(g), "accuracy": float(acc[i].mean()), "se_vs_best": float(se[i])}
                                          for i, g in enumerate(grid)]})
        right = lambda p: float(np.mean((p > 0.5) == (y == 1)))  # noqa: E731
        return {"oof_raw_accuracy": right(oof), "oof_smoothed_accuracy": right(smoothed),
                "chosen": asdict(grid[pick]), "graph": spread[pick][1]}

    return run_cached(ctx.cache_root, "calibrate", config, inputs, compute, force=ctx.force)


STAGE = Stage("calibrate", ("encode",), run_calibrate,
              "cross-fitted weak labels on weak_train, raw and smoothed, for calibration")
