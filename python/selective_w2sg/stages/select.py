"""`select`: the training labels of the selective students: the strong model's self-label where
P(IK) says it knows, else the (smoothed or raw) weak label.

Outputs: labels_<student>_<split>.npy, use_self_<student>_<split>.npy; selection.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..select import Selection, select_labels, weak_confidence
from .base import Stage, StageContext
from .smooth import W2S_SPLITS
from .training import weak_val_mask


def calibrate_weak(ctx: StageContext, weak: StageDir) -> Any:
    """Isotonic map from the weak model's confidence max(p, 1-p) to P(its hard label is right),
    fitted on the slice of weak_train the weak model did not train on (its early-stopping slice)."""
    from sklearn.isotonic import IsotonicRegression

    held = weak_val_mask(ctx.splits, ctx.seed)
    p = np.asarray(weak.npy("preds_weak_train"))[held]
    right = (p > 0.5) == (ctx.splits.labels("weak_train")[held] == 1)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    return iso.fit(weak_confidence(p), right.astype(np.float64))


def run_select(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode, pik, smooth, weak = deps["encode"], deps["pik"], deps["smooth"], deps["weak"]
    sel = ctx.selective
    config = {"rule": sel.rule, "tau": sel.tau}
    inputs = {"encode": encode.path.name, "pik": pik.path.name, "smooth": smooth.path.name,
              "weak": weak.path.name, **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        iso = calibrate_weak(ctx, weak) if sel.rule == "compare" else None
        summary: dict[str, Any] = {}
        for s in W2S_SPLITS:
            self_l = pik.npy(f"self_{s}")
            p_ik = pik.npy(f"pik_{s}")
            raw = weak.npy(f"preds_{s}")
            smoothed = smooth.npy(f"smoothed_{s}")
            chosen: dict[str, Selection] = {}
            for name, base in (("selective", smoothed), ("pik_only", raw)):
                conf = None if iso is None else iso.predict(weak_confidence(base)).astype(np.float32)
                chosen[name] = select_labels(self_l, base, p_ik, rule=sel.rule, tau=sel.tau, weak_conf=conf)
            chosen["smooth_only"] = Selection(smoothed.astype(np.float32), np.zeros(len(smoothed), bool))
            for name, c in chosen.items():
                w.npy(f"labels_{name}_{s}", c.labels)
                w.npy(f"use_self_{name}_{s}", c.use_self)
                summary[f"coverage_{name}_{s}"] = c.coverage
        w.json("selection", summary)
        return summary

    return run_cached(ctx.cache_root, "select", config, inputs, compute, force=ctx.force)


STAGE = Stage("select", ("encode", "pik", "smooth", "weak"), run_select,
              "labels of the selective students (self-labels where P(IK) says so, else weak)")
