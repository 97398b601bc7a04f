"""`smooth`: the kNN graph (Rust core, cosine) over the w2s_train + w2s_val embeddings of the
strong model, and label spreading of the weak soft labels over it.

Outputs: smoothed_w2s_train.npy, smoothed_w2s_val.npy (n,) float32; graph.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ..graph import knn_graph
from ..smoothing import SmoothResult, smooth_labels
from .base import Stage, StageContext
from .encode import load_encoded
from .training import center_by_question

W2S_SPLITS = ("w2s_train", "w2s_val")


def spread_weak_labels(ctx: StageContext, encode: StageDir, examples: list[Any], weak_p: np.ndarray,
                       ) -> tuple[np.ndarray, dict[str, Any]]:
    """Weak soft labels float32 (n,) of `examples` spread over the kNN graph of their strong
    embeddings (cosine; question-centred by default). Returns (smoothed (n,), graph summary)."""
    sel = ctx.selective
    enc = load_encoded(encode)
    emb = np.asarray(enc.embedding[enc.rows(examples)])
    if sel.graph_center:
        emb = center_by_question(emb, [e.question_id for e in examples])
    weak_p = np.asarray(weak_p, dtype=np.float32)
    # A question whose examples embed identically has no direction left after centring: it
    # keeps its weak label and stays out of the graph.
    on_graph = np.linalg.norm(emb, axis=1) > 1e-6
    smoothed = weak_p.copy()
    k = min(sel.k, int(on_graph.sum()) - 1)
    method, recall, iters, converged, residual = None, None, 0, True, 0.0
    if k >= 1:
        graph = knn_graph(emb[on_graph], k, metric="cosine", method=sel.graph_method, seed=ctx.seed)
        res = smooth_labels(graph, weak_p[on_graph], alpha=sel.alpha, max_iter=sel.smooth_iters, return_info=True)
        assert isinstance(res, SmoothResult)
        smoothed[on_graph] = res.labels
        method, recall = graph.method, graph.estimated_recall
        iters, converged, residual = res.iterations, res.converged, res.residual
    info = {"n": int(len(emb)), "on_graph": int(on_graph.sum()), "k": k, "method": method,
            "estimated_recall": recall, "centered": sel.graph_center,
            "iterations": iters, "converged": converged, "residual": residual,
            "mean_abs_change": float(np.mean(np.abs(smoothed - weak_p)))}
    return smoothed, info


def run_smooth(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    """Label spreading of the weak soft labels over the kNN graph of the w2s embeddings."""
    encode, weak = deps["encode"], deps["weak"]
    sel = ctx.selective
    config = {"k": sel.k, "alpha": sel.alpha, "iters": sel.smooth_iters, "method": sel.graph_method,
              "center": sel.graph_center, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, "weak": weak.path.name,
              **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        examples = [e for s in W2S_SPLITS for e in ctx.splits.examples[s]]
        weak_p = np.concatenate([weak.npy(f"preds_{s}") for s in W2S_SPLITS]).astype(np.float32)
        smoothed, info = spread_weak_labels(ctx, encode, examples, weak_p)
        n_tr = len(ctx.splits.examples["w2s_train"])
        w.npy("smoothed_w2s_train", smoothed[:n_tr])
        w.npy("smoothed_w2s_val", smoothed[n_tr:])
        w.json("graph", info)
        return info

    return run_cached(ctx.cache_root, "smooth", config, inputs, compute, force=ctx.force)


STAGE = Stage("smooth", ("encode", "weak"), run_smooth, "kNN graph of the w2s embeddings; weak labels spread over it")
