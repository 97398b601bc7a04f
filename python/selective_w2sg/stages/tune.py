"""`tune`: one model-selection rule for every strong student, chosen on weak_train (where ground
truth is allowed) and blind to w2s and test ground truth.

With anchored probe heads, a student cannot early-stop on its own weak-derived w2s_val labels: a
head that starts at the zero-shot answer fits self-labelled validation data perfectly at step 0,
so the rule would differ by label source. Instead the number of epochs (0, the anchor alone, is a
candidate) is chosen once per split by 3-fold cross-validation over weak_train questions, training
the anchored strong head on ground truth; every student then trains exactly that many epochs.
With plain heads (or full / lora mode) students keep early stopping on w2s_val, as before.

Output: tune.json {"epochs": chosen or null, "grid": [...], "cv_accuracy": [...] per grid value}.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..tasks import hash_seed
from ..train import predict_proba, train_classifier, val_score
from .base import Stage, StageContext
from .encode import anchor_for
from .training import build_model

EPOCH_GRID = (0, 2, 5, 10, 20, 40)
FOLDS = 3


def run_tune(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    cfg = ctx.train.resolved()
    anchor = anchor_for(ctx, deps["encode"])
    grid = [e for e in EPOCH_GRID if e <= cfg.epochs] if anchor is not None else []
    config = {"train": cfg.to_dict(), "grid": grid, "folds": FOLDS, "seed": ctx.seed, **ctx.numerics,
              "anchor": None if anchor is None else anchor.key}
    inputs = {"weak_train": ctx.splits.fingerprint("weak_train")}

    def compute(w: Any) -> dict[str, Any]:
        if anchor is None:
            w.json("tune", {"epochs": None, "grid": [], "cv_accuracy": [],
                            "rule": "early stopping on weak-labelled w2s_val"})
            return {"epochs": None}
        y = ctx.splits.labels("weak_train").astype(np.float32)
        qids = [e.question_id for e in ctx.splits.examples["weak_train"]]
        fold = np.array([hash_seed(ctx.seed, "tune", q) % FOLDS for q in qids])
        acc = np.zeros((FOLDS, len(grid)))
        for f in range(FOLDS):
            tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            start, inputs_of = build_model(ctx, ctx.strong, cfg, "weak_train", tr, anchor)
            x = inputs_of("weak_train")  # features read once per fold; each grid value gets a fresh head
            for j, epochs in enumerate(grid):
                model = copy.deepcopy(start)
                if epochs > 0:
                    run_cfg = replace(cfg, epochs=epochs, lr=cfg.anchored_lr)
                    model = train_classifier(model, x.subset(tr), y[tr], None, None, run_cfg, seed=ctx.seed,
                                             device=ctx.device).model
                p = predict_proba(model, x.subset(va), batch_size=cfg.eval_batch_size, device=ctx.device)
                acc[f, j] = val_score(p, y[va])[0]
        mean = acc.mean(0)
        best = int(np.flatnonzero(mean >= mean.max() - 1e-12)[0])  # ties: fewer epochs (closer to the anchor)
        out = {"epochs": grid[best], "grid": grid, "cv_accuracy": mean.tolist(), "rule": "3-fold CV on weak_train"}
        w.json("tune", out)
        return {"epochs": grid[best], "cv_accuracy": float(mean[best])}

    return run_cached(ctx.cache_root, "tune", config, inputs, compute, force=ctx.force)


def chosen_epochs(tune: StageDir) -> int | None:
    """The epochs every student trains (None: early stopping on w2s_val instead)."""
    return tune.json("tune")["epochs"]


STAGE = Stage("tune", ("encode",), run_tune, "epochs for every strong student, by CV on weak_train")
