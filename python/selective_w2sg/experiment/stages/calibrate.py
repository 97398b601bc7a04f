"""`calibrate`: how often a weak label of a given confidence is right, measured on data the weak
model neither trained nor early-stopped on, for each kind of label a student may fall back to.

Cross-fitting over weak_train: its questions are cut into 5 folds; for each fold a weak model is
trained on the other four (early-stopping on a question slice of them) and predicts the fold. Those
weak models are stages of their own, `weak-fold-0` .. `weak-fold-4` (`weak_fold.py`), that this
one needs. The out-of-fold predictions are the "raw" weak labels of weak_train.

They also choose how to smooth: each setting of `smooth.smoothing_grid` (graph embedding, k,
alpha; alpha 0 = no smoothing) spreads them over the kNN graph of the weak_train embeddings,
and the question-level accuracy of the spread labels against weak_train's ground truth scores
it. The choice is the simplest setting within one standard error (of the paired per-question
difference) of the best, so spreading is used only where it beats the raw labels by more than
noise; on a graph that carries no signal that is alpha 0, and the labels stay as they were.
The chosen setting's labels (`smooth.smooth_weak_labels`, as `smooth` makes them for w2s) are
the "smoothed" kind. `select` fits one isotonic map per kind, from confidence max(p, 1-p) to
P(the hard label is right), and compares P(IK) with the map of the label it would replace.

Outputs: oof_raw.npy, oof_smoothed.npy (n_weak_train,) float32; smoothing.json (every setting's
accuracy, the chosen one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..stats import question_accuracy, simplest_within_one_se
from .base import Stage, StageContext
from .smooth import smooth_weak_labels, smoothing_grid
from .weak_fold import FOLDS, fold_name, fold_of

FOLD_STAGES = tuple(fold_name(f) for f in range(FOLDS))


def run_calibrate(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode = deps["encode"]
    sel = ctx.selective
    grid = smoothing_grid(sel)
    # The fold models' folders stand for everything they were trained with (model, train settings,
    # numerics); the seed also cuts the folds and seeds the kNN search.
    config = {"format": 3, "folds": FOLDS, "grid": [asdict(g) for g in grid], "iters": sel.smooth_iters,
              "method": sel.graph_method, "center": sel.graph_center, "output": sel.smoothed_output, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, "weak_train": ctx.splits.fingerprint("weak_train"),
              "folds": [deps[n].path.name for n in FOLD_STAGES]}

    def compute(w: Any) -> dict[str, Any]:
        examples = ctx.splits.examples["weak_train"]
        y = ctx.splits.labels("weak_train").astype(np.float32)
        fold = fold_of(ctx)
        oof = np.full(len(examples), np.nan, np.float32)
        for f, name in enumerate(FOLD_STAGES):
            held = fold == f
            oof[held] = deps[name].npy("preds_weak_train")[held]
        _, q = np.unique(np.array([e.question_id for e in examples]), return_inverse=True)
        smoothed = smooth_weak_labels(ctx, encode, examples, oof, grid)
        acc = np.stack([question_accuracy(s.spread, y, q) for s in smoothed])
        pick, se = simplest_within_one_se(acc, range(len(grid)))  # grid is simplest first
        chosen = smoothed[pick]
        w.npy("oof_raw", oof)
        w.npy("oof_smoothed", chosen.labels)
        w.json("smoothing", {"chosen": asdict(grid[pick]), "rule": "1-SE, question-level accuracy on weak_train",
                             "settings": [{**asdict(g), "accuracy": float(acc[i].mean()), "se_vs_best": float(se[i])}
                                          for i, g in enumerate(grid)]})
        right = lambda p: float(np.mean((p > 0.5) == (y == 1)))  # noqa: E731
        return {"oof_raw_accuracy": right(oof), "oof_smoothed_accuracy": right(chosen.labels),
                "chosen": asdict(grid[pick]), "graph": chosen.graph}

    return run_cached(ctx.cache_root, "calibrate", config, inputs, compute, force=ctx.force)


STAGE = Stage("calibrate", ("encode", *FOLD_STAGES), run_calibrate,
              "cross-fitted weak labels on weak_train, raw and smoothed, for calibration")
