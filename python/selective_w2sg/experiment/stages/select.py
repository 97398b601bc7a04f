"""`select`: what every selection student decides from, per w2s split (w2s_train, w2s_val):

    self_<split>        the strong model's self-labels (1 where the candidate is its answer)
    pik_<split>         the trained P(IK)
    pik_xsource_<split> mixtures only: P(IK) trained on the other sources' weak_train
    confidence_<split>  the strong model's zero-shot confidence in its answer, max(p, 1 - p)
    cal_raw_<split>     calibrated P(the raw weak label is right)
    cal_smoothed_<split> calibrated P(the smoothed weak label is right)
    selection.json      P(IK)'s weak_train base rate; the calibration maps' sizes

The calibration maps are isotonic fits on cross-fitted weak labels of weak_train (`calibrate`),
one per kind of label. The students (`stages/students/`) turn these into training labels, one
decision per question. No ground truth of w2s or test is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..selection import weak_confidence
from .base import Stage, StageContext
from .encode import load_encoded, zero_shot_prob
from .smooth import W2S_SPLITS


def _isotonic(conf: np.ndarray, right: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    return iso.fit(conf, right.astype(np.float64))


def run_select(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode, pik, smooth, weak, cal = deps["encode"], deps["pik"], deps["smooth"], deps["weak"], deps["calibrate"]
    inputs = {"encode": encode.path.name, "pik": pik.path.name, "smooth": smooth.path.name, "weak": weak.path.name,
              "calibrate": cal.path.name, **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        y = ctx.splits.labels("weak_train") == 1
        maps = {kind: _isotonic(weak_confidence(p), (p > 0.5) == y)
                for kind, p in (("raw", cal.npy("oof_raw")), ("smoothed", cal.npy("oof_smoothed")))}
        enc = load_encoded(encode)
        for s in W2S_SPLITS:
            w.npy(f"self_{s}", pik.npy(f"self_{s}"))
            w.npy(f"pik_{s}", pik.npy(f"pik_{s}"))
            if pik.has(f"pik_xsource_{s}"):  # mixtures: P(IK) from the other sources
                w.npy(f"pik_xsource_{s}", pik.npy(f"pik_xsource_{s}"))
            w.npy(f"confidence_{s}", weak_confidence(zero_shot_prob(enc, ctx.splits.examples[s])).astype(np.float32))
            for kind, labels in (("raw", weak.npy(f"preds_{s}")), ("smoothed", smooth.npy(f"smoothed_{s}"))):
                w.npy(f"cal_{kind}_{s}", maps[kind].predict(weak_confidence(labels)).astype(np.float32))
        info = {"pik_base_rate": float(pik.json("metrics")["train_base_rate"])}
        w.json("selection", info)
        return info

    return run_cached(ctx.cache_root, "select", {"format": 3}, inputs, compute, force=ctx.force)


STAGE = Stage("select", ("encode", "pik", "smooth", "weak", "calibrate"), run_select,
              "what the selection students decide from: self-labels, P(IK), calibrated weak confidence")
