"""`tune`: how far every anchored strong student may move from its anchor, chosen on weak_train
(where ground truth is allowed) and blind to w2s and test ground truth.

An anchored probe head is a penalised logistic regression with the zero-shot log-odds as offset
(`training.fit_anchored_head`): the one setting is C, the inverse L2 strength of its
correction, fitted to convergence (no epochs, steps or learning rate whose count would depend on
a student's data size). Students learn from noisy labels, so C is chosen where the labels are
noisy the same way: the head is fitted on weak_train's *out-of-fold weak labels* (`calibrate`:
each question labelled by a weak model that never saw it) and scored against weak_train's ground
truth on held-out questions (3 folds by question). The choice is the smallest C (the strongest
pull to the anchor) within one standard error (of its paired per-question difference) of the
best, so a flat curve does not let noise pick, and the choice is stable across re-splits. Every
student (naive, aux_conf, self_only, selective ...) then fits with that C.

With plain heads (or full / lora mode) students keep early stopping on w2s_val, as before.

Where the anchor is worse than useless (a strong model below chance zero-shot), no correction of
it reaches what the features hold, so plain heads (no anchor) are candidates too, after every
anchored one (`budget_grid`).

Output: tune.json {"C", "anchored", "candidates": [{"C", "anchored", "cv_accuracy", "se_vs_best"}],
"rule"}.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..linear import C_GRID
from ..stats import question_accuracy, simplest_within_one_se
from ..tasks import hash_seed
from ..training import predict_proba
from .base import Stage, StageContext
from .encode import anchor_for
from .fitting import Anchor, Budget, build_model, fit_anchored_head

FOLDS = 3


def run_tune(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    cfg = ctx.train.resolved()
    anchor = anchor_for(ctx, deps["encode"])
    cands = budget_grid() if anchor is not None else []
    config = {"format": 4, "train": cfg.to_dict(), "candidates": [b.to_dict() for b in cands], "folds": FOLDS,
              "seed": ctx.seed, **ctx.numerics, "anchor": None if anchor is None else anchor.key}
    inputs = {"weak_train": ctx.splits.fingerprint("weak_train"), "calibrate": deps["calibrate"].path.name}

    def compute(w: Any) -> dict[str, Any]:
        if anchor is None:
            w.json("tune", {"C": None, "anchored": None, "candidates": [],
                            "rule": "early stopping on weak-labelled w2s_val"})
            return {"C": None}
        noisy = deps["calibrate"].npy("oof_raw").astype(np.float32)  # weak-like labels, out of fold
        acc = cross_validate_heads(ctx, anchor, "weak_train", noisy, ctx.splits.labels("weak_train"), FOLDS, "tune")
        pick, se = simplest_within_one_se(acc, range(len(cands)))  # simplest first: see budget_grid
        out = {**cands[pick].to_dict(), "rule": "1-SE on weak_train OOF weak labels vs ground truth, 3 folds",
               "candidates": [{**b.to_dict(), "cv_accuracy": float(acc[i].mean()), "se_vs_best": float(se[i])}
                              for i, b in enumerate(cands)]}
        w.json("tune", out)
        return {**cands[pick].to_dict(), "cv_accuracy": float(acc[pick].mean())}

    return run_cached(ctx.cache_root, "tune", config, inputs, compute, force=ctx.force)


def cross_validate_heads(ctx: StageContext, anchor: Anchor, split: str, labels: np.ndarray, truth: np.ndarray,
                         folds: int, purpose: str) -> np.ndarray:
    """Per-question held-out accuracy, float64 (len(budget_grid()), questions of `split`): every
    head of `budget_grid`, fitted to `labels` (n,) on the other folds of `split` (`folds` folds by
    question, seeded by `purpose`) and scored against `truth` (n,) on the held-out one."""
    cfg = ctx.train.resolved()
    cands = budget_grid()
    qids = [e.question_id for e in ctx.splits.examples[split]]
    _, q = np.unique(np.array(qids), return_inverse=True)
    fold = np.array([hash_seed(ctx.seed, purpose, x) % folds for x in qids])
    oof = np.zeros((len(cands), len(qids)), np.float32)
    start, inputs_of = build_model(ctx, ctx.strong, cfg, split, np.arange(len(qids)), anchor)
    x = inputs_of(split)
    for f in range(folds):
        tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if len(tr) == 0 or len(va) == 0:
            continue
        for j, b in enumerate(cands):
            head = fit_anchored_head(copy.deepcopy(start), x.subset(tr), labels[tr], b, "xent", cfg)
            oof[j, va] = predict_proba(head, x.subset(va), batch_size=cfg.eval_batch_size, device=ctx.device)
    return np.stack([question_accuracy(p, truth, q) for p in oof])


def budget_grid() -> list[Budget]:
    """Every head a probe student on an anchored run may be, simplest first: anchored heads from
    the strongest pull to the anchor (smallest C) up, then plain heads likewise. The 1-SE rule
    takes the first within noise of the best, so a plain head (which drops what the strong model
    knows zero-shot) is used only where it beats every anchored one by more than noise."""
    return [Budget(c, True) for c in C_GRID] + [Budget(c, False) for c in C_GRID]


def chosen_budget(tune: StageDir) -> Budget | None:
    """The budget every student fits with (None: early stopping on w2s_val instead)."""
    t = tune.json("tune")
    return None if t["C"] is None else Budget(float(t["C"]), bool(t.get("anchored", True)))


STAGE = Stage("tune", ("encode", "calibrate"), run_tune,
              "the anchored heads' correction strength C, by CV on weak_train's out-of-fold weak labels")
