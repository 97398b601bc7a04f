"""`tune`: one training budget for every strong student, chosen on weak_train (where ground
truth is allowed) and blind to w2s and test ground truth.

Students learn from noisy labels, so the budget is chosen where the labels are noisy the same
way: the anchored strong head is trained on weak_train's *out-of-fold weak labels* (`calibrate`:
each question labelled by a weak model that never saw it) and scored against weak_train's ground
truth on held-out questions (3 folds by question). A budget that is safe there does not drive a
student below its own labels or its zero-shot start.

The budget is counted in optimiser steps, not epochs, so it means the same amount of training
whatever a student's training set size (students train on twice the examples a tuning fold
has). The grid crosses steps with the correction's learning rate, so a wrong anchor can be
overruled (a larger rate) where the data say so. The choice is the *smallest* budget (fewest
steps, then lowest rate) whose question-level accuracy is within one standard error (of its
paired per-question difference) of the best: a flat curve no longer lets noise pick, and the
choice is stable across re-splits. Every candidate trains (no 0-step anchor-only candidate):
students that never move from the anchor would all be the zero-shot model.

With plain heads (or full / lora mode) students keep early stopping on w2s_val, as before.

Output: tune.json {"steps", "lr", "candidates": [{"steps", "lr", "cv_accuracy", "se_vs_best"}],
"rule"}.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..stats import question_accuracy, simplest_within_one_se
from ..tasks import hash_seed
from ..train import predict_proba, train_classifier
from .base import Stage, StageContext
from .encode import anchor_for
from .training import Budget, build_model

STEP_GRID = (10, 25, 50, 100, 200, 400)
LR_GRID = (1e-3, 1e-2, 3e-2)  # the anchored correction's peak rate (also the ceiling's grid)
FOLDS = 3


def run_tune(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    cfg = ctx.train.resolved()
    anchor = anchor_for(ctx, deps["encode"])
    cands = [(s, lr) for s in STEP_GRID for lr in LR_GRID] if anchor is not None else []
    config = {"format": 2, "train": cfg.to_dict(), "candidates": cands, "folds": FOLDS, "seed": ctx.seed,
              **ctx.numerics, "anchor": None if anchor is None else anchor.key}
    inputs = {"weak_train": ctx.splits.fingerprint("weak_train"), "calibrate": deps["calibrate"].path.name}

    def compute(w: Any) -> dict[str, Any]:
        if anchor is None:
            w.json("tune", {"steps": None, "lr": None, "candidates": [],
                            "rule": "early stopping on weak-labelled w2s_val"})
            return {"steps": None}
        truth = ctx.splits.labels("weak_train")
        noisy = deps["calibrate"].npy("oof_raw").astype(np.float32)  # weak-like labels, out of fold
        qids = [e.question_id for e in ctx.splits.examples["weak_train"]]
        _, q = np.unique(np.array(qids), return_inverse=True)
        fold = np.array([hash_seed(ctx.seed, "tune", x) % FOLDS for x in qids])
        oof = np.zeros((len(cands), len(qids)), np.float32)
        for f in range(FOLDS):
            tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            if len(tr) == 0 or len(va) == 0:
                continue
            start, inputs_of = build_model(ctx, ctx.strong, cfg, "weak_train", tr, anchor)
            x = inputs_of("weak_train")  # features read once per fold; each candidate gets a fresh head
            for j, (steps, lr) in enumerate(cands):
                run_cfg = replace(cfg, max_steps=steps, lr=lr)
                model = train_classifier(copy.deepcopy(start), x.subset(tr), noisy[tr], None, None, run_cfg,
                                         seed=ctx.seed, device=ctx.device).model
                oof[j, va] = predict_proba(model, x.subset(va), batch_size=cfg.eval_batch_size, device=ctx.device)
        acc = np.stack([question_accuracy(p, truth, q) for p in oof])
        order = sorted(range(len(cands)), key=lambda i: cands[i])  # fewest steps, then lowest rate
        pick, se = simplest_within_one_se(acc, order)
        steps, lr = cands[pick]
        out = {"steps": steps, "lr": lr, "rule": "1-SE on weak_train OOF weak labels vs ground truth, 3 folds",
               "candidates": [{"steps": s, "lr": r, "cv_accuracy": float(acc[i].mean()), "se_vs_best": float(se[i])}
                              for i, (s, r) in enumerate(cands)]}
        w.json("tune", out)
        return {"steps": steps, "lr": lr, "cv_accuracy": float(acc[pick].mean())}

    return run_cached(ctx.cache_root, "tune", config, inputs, compute, force=ctx.force)


def chosen_budget(tune: StageDir) -> Budget | None:
    """The budget every student trains (None: early stopping on w2s_val instead)."""
    t = tune.json("tune")
    return None if t["steps"] is None else Budget(int(t["steps"]), float(t["lr"]))


STAGE = Stage("tune", ("encode", "calibrate"), run_tune,
              "training steps and rate for every strong student, by CV on weak_train's out-of-fold weak labels")
