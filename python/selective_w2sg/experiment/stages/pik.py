"""`pik`: the P(IK) probe, trained on weak_train (ground truth is allowed there), target "the
strong model's self-label is right"; held-out AUROC/ECE on a question-level slice of weak_train.

Outputs: pik_<split>.npy, self_<split>.npy (n_examples,) float32 (P(IK); the self-labels it
judges, 1 where the example's candidate is the strong model's answer); metrics.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..pik import PikProbe
from ..tasks import SPLITS, hash_seed, source_of
from .base import Stage, StageContext
from .encode import load_encoded


def run_pik(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    encode = deps["encode"]
    sel = ctx.selective
    # "self_label_among" is --self-labels' older name, kept in the key so that existing caches stay valid
    config = {"format": 4, "pik": asdict(sel.pik_config), "pik_confidence_inputs": sel.pik_confidence_inputs,
              "self_label_among": sel.self_labels, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, **{s: ctx.splits.fingerprint(s) for s in SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        enc = load_encoded(encode)
        ex = ctx.splits.examples["weak_train"]
        x, conf = enc.pik_inputs(ex, sel.pik_confidence_inputs, sel.self_labels)
        knows = enc.self_labels(ex, sel.self_labels) == ctx.splits.labels("weak_train")
        # Held-out quality on a question-level slice of weak_train, then refit on all of it.
        held = np.array([hash_seed(ctx.seed, "pik-heldout", e.question_id) % 5 == 0 for e in ex])
        metrics: dict[str, Any] = {"train_base_rate": float(knows.mean()), "n_train": int(len(knows))}
        qids = np.array([e.question_id for e in ex])
        part = lambda a, m: None if a is None else a[m]  # noqa: E731
        if knows[~held].any() and not knows[~held].all() and held.any():
            probe = PikProbe(sel.pik_config).fit(x[~held], knows[~held], groups=qids[~held], confidence=part(conf, ~held))
            metrics["heldout"] = probe.evaluate(x[held], knows[held], part(conf, held), qids[held])
        probe = PikProbe(sel.pik_config).fit(x, knows, groups=qids, confidence=conf)
        metrics["probe"] = probe.to_dict()
        for s in SPLITS:
            exs = ctx.splits.examples[s]
            w.npy(f"pik_{s}", probe.predict(*enc.pik_inputs(exs, sel.pik_confidence_inputs, sel.self_labels)))
            w.npy(f"self_{s}", enc.self_labels(exs, sel.self_labels))
        sources = np.array([source_of(q) for q in qids])
        if len(set(sources)) > 1:  # a mixture: P(IK) for each source from the *other* sources only
            metrics["cross_source"] = cross_source_pik(ctx, enc, x, conf, knows, qids, sources, w)
        w.json("metrics", metrics)
        return {"heldout_auroc": metrics.get("heldout", {}).get("question_auroc"), "chosen": probe.chosen}

    return run_cached(ctx.cache_root, "pik", config, inputs, compute, force=ctx.force)


def cross_source_pik(ctx: StageContext, enc: Any, x: np.ndarray, conf: np.ndarray | None, knows: np.ndarray,
                     qids: np.ndarray, sources: np.ndarray, w: Any) -> dict[str, Any]:
    """P(IK) across tasks inside a mixture: for each source, a probe fitted on the weak_train
    questions of every *other* source (never the source's own labels) scores that source's
    examples of every split; written as pik_xsource_<split>.npy for the `transfer_pik` student."""
    sel = ctx.selective
    out: dict[str, Any] = {}
    preds = {s: np.full(len(ctx.splits.examples[s]), np.nan, np.float32) for s in SPLITS}
    part = lambda a, m: None if a is None else a[m]  # noqa: E731
    for src in sorted(set(sources)):
        other = sources != src
        probe = PikProbe(sel.pik_config).fit(x[other], knows[other], groups=qids[other], confidence=part(conf, other))
        out[src] = probe.to_dict()
        for s in SPLITS:
            exs = ctx.splits.examples[s]
            mine = np.array([source_of(e.question_id) == src for e in exs])
            if mine.any():
                xs, cs = enc.pik_inputs([e for e, m in zip(exs, mine) if m], sel.pik_confidence_inputs,
                                        sel.self_labels)
                preds[s][mine] = probe.predict(xs, cs)
    for s in SPLITS:
        w.npy(f"pik_xsource_{s}", preds[s])
    return out


STAGE = Stage("pik", ("encode",), run_pik, "P(IK) probe on weak_train; P(IK) and self-labels on every split")
