"""`smooth`: the kNN graph (Rust core, cosine) over the w2s_train + w2s_val embeddings of the
strong model, and label spreading of the weak soft labels over it, at the setting (embedding,
k, alpha) `calibrate` chose on weak_train.

`smooth_weak_labels` is the one way weak labels are smoothed, here and in `calibrate` (which
scores every setting of `smoothing_grid` on weak_train and picks one).

Outputs: smoothed_w2s_train.npy, smoothed_w2s_val.npy (n,) float32; graph.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..cache import StageDir, run_cached
from ...graph.knn import knn_graph
from ...config import GRAPH_EMBEDDINGS, SelectiveConfig
from ..linear import logit
from ..selection import ALPHA_GRID, K_GRID
from ...graph.smoothing import SmoothResult, smooth_labels
from .base import Stage, StageContext
from .encode import load_encoded
from .fitting import center_by_question

W2S_SPLITS = ("w2s_train", "w2s_val")


@dataclass(frozen=True)
class SmoothSetting:
    """One smoothing setting: the embedding the graph is built on, its k, and alpha (0: none)."""

    embedding: str
    k: int
    alpha: float


def smoothing_grid(sel: SelectiveConfig) -> list[SmoothSetting]:
    """The settings `calibrate` chooses among, simplest first: no smoothing (alpha 0) first,
    then weaker spreading, fewer neighbours, the last layer before the feature layer. A setting
    fixed on the command line is the only value of its axis."""
    alphas = ALPHA_GRID if sel.alpha is None else (sel.alpha,)
    ks = K_GRID if sel.k is None else (sel.k,)
    embs = GRAPH_EMBEDDINGS if sel.graph_embedding is None else (sel.graph_embedding,)
    out: list[SmoothSetting] = []
    for a in sorted(alphas):
        if a == 0:  # no smoothing: k and embedding do not matter
            out.append(SmoothSetting(embs[0], ks[0], 0.0))
            continue
        out += [SmoothSetting(e, k, a) for k in sorted(ks) for e in embs]
    return out


def _spread(ctx: StageContext, encode: StageDir, examples: Sequence[Any], weak_p: np.ndarray,
            settings: Sequence[SmoothSetting]) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Weak soft labels float32 (n,) of `examples` spread over the kNN graph of their strong
    embeddings (cosine; question-centred by default), at each of `settings`. Returns one
    (smoothed (n,), graph summary) per setting; alpha 0 gives the labels unchanged, with no graph.
    Each embedding is read and centred once, and each (embedding, k) graph built once, however
    many alphas use it."""
    sel = ctx.selective
    enc = load_encoded(encode) if any(st.alpha > 0 for st in settings) else None
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # embedding -> (rows, on the graph)
    graphs: dict[tuple[str, int], Any] = {}

    def embed(kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind not in embedded:
            assert enc is not None
            src = enc.embedding if kind == "last" else enc.features
            emb = np.asarray(src[enc.rows(examples)], dtype=np.float32)
            if sel.graph_center:
                emb = center_by_question(emb, [e.question_id for e in examples])
            # A question whose examples embed identically has no direction left after centring: it
            # keeps its weak label and stays out of the graph.
            embedded[kind] = (emb, np.linalg.norm(emb, axis=1) > 1e-6)
        return embedded[kind]

    out = []
    for setting in settings:
        info: dict[str, Any] = {**asdict(setting), "n": len(examples), "centered": sel.graph_center}
        if setting.alpha == 0:
            out.append((weak_p.copy(), {**info, "on_graph": 0, "k": 0, "method": None, "estimated_recall": None,
                                        "iterations": 0, "converged": True, "residual": 0.0, "mean_abs_change": 0.0}))
            continue
        emb, on_graph = embed(setting.embedding)
        smoothed = weak_p.copy()
        k = min(setting.k, int(on_graph.sum()) - 1)
        method, recall, iters, converged, residual = None, None, 0, True, 0.0
        if k >= 1:
            if (setting.embedding, k) not in graphs:
                graphs[setting.embedding, k] = knn_graph(emb[on_graph], k, metric="cosine", method=sel.graph_method,
                                                         seed=ctx.seed)
            graph = graphs[setting.embedding, k]
            res = smooth_labels(graph, weak_p[on_graph], alpha=setting.alpha, max_iter=sel.smooth_iters,
                                return_info=True)
            assert isinstance(res, SmoothResult)
            smoothed[on_graph] = res.labels
            method, recall = graph.method, graph.estimated_recall
            iters, converged, residual = res.iterations, res.converged, res.residual
        info.update({"on_graph": int(on_graph.sum()), "k": k, "method": method, "estimated_recall": recall,
                     "iterations": iters, "converged": converged, "residual": residual,
                     "mean_abs_change": float(np.mean(np.abs(smoothed - weak_p)))})
        out.append((smoothed, info))
    return out


@dataclass(frozen=True)
class Smoothed:
    """Weak labels smoothed at one setting: `spread` as label spreading left them, `labels` what a
    student gets from them (as spread, or rescaled: `SelectiveConfig.smoothed_output`), both
    float32 (n,); `graph` the graph's summary (graph.json)."""

    setting: SmoothSetting
    spread: np.ndarray
    labels: np.ndarray
    graph: dict[str, Any]


def smooth_weak_labels(ctx: StageContext, encode: StageDir, examples: Sequence[Any], weak_p: np.ndarray,
                       settings: Sequence[SmoothSetting]) -> list[Smoothed]:
    """Weak soft labels float32 (n,) of `examples` smoothed over the kNN graph of their strong
    embeddings (`encode`), at each of `settings`: one `Smoothed` per setting, in order. Each
    embedding is read once and each (embedding, k) graph built once, however many alphas use it."""
    weak_p = np.asarray(weak_p, dtype=np.float32)
    return [Smoothed(st, spread, _finish(ctx.selective, spread, weak_p, st), info)
            for st, (spread, info) in zip(settings, _spread(ctx, encode, examples, weak_p, settings))]


def rescale_confidence(smoothed: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`smoothed` (n,) with its log-odds multiplied by one factor s >= 1, chosen so that its mean
    confidence mean|p - 0.5| equals `reference`'s (the weak labels before spreading). Spreading
    averages labels and so flattens them towards the mean; this undoes the flattening without
    changing any hard label (the sign of every log-odds is kept) and without ground truth."""
    target = float(np.mean(np.abs(np.asarray(reference, dtype=np.float64) - 0.5)))
    z = logit(smoothed)
    conf = lambda s: float(np.mean(np.abs(1 / (1 + np.exp(-s * z)) - 0.5)))  # noqa: E731
    if len(z) == 0 or conf(1.0) >= target:
        return np.asarray(smoothed, dtype=np.float32)
    lo, hi = 1.0, 2.0
    while conf(hi) < target and hi < 1e4:
        hi *= 2
    for _ in range(60):  # bisection: conf is increasing in s
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if conf(mid) < target else (lo, mid)
    return (1 / (1 + np.exp(-hi * z))).astype(np.float32)


def _finish(sel: SelectiveConfig, smoothed: np.ndarray, weak_p: np.ndarray, setting: SmoothSetting) -> np.ndarray:
    """The labels a student gets from spreading: as spread (`soft`), or `rescaled`; alpha 0:
    the weak labels themselves."""
    if setting.alpha == 0 or sel.smoothed_output == "soft":
        return np.asarray(smoothed, dtype=np.float32)
    return rescale_confidence(smoothed, weak_p)


def chosen_setting(calibrate: StageDir) -> SmoothSetting:
    c = calibrate.json("smoothing")["chosen"]
    return SmoothSetting(c["embedding"], int(c["k"]), float(c["alpha"]))


def run_smooth(ctx: StageContext, deps: Mapping[str, StageDir]) -> StageDir:
    """Label spreading of the weak soft labels over the kNN graph of the w2s embeddings."""
    encode, weak, cal = deps["encode"], deps["weak"], deps["calibrate"]
    sel = ctx.selective
    setting = chosen_setting(cal)
    config = {"format": 2, "setting": asdict(setting), "iters": sel.smooth_iters, "method": sel.graph_method,
              "center": sel.graph_center, "output": sel.smoothed_output, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, "weak": weak.path.name,
              **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        examples = [e for s in W2S_SPLITS for e in ctx.splits.examples[s]]
        weak_p = np.concatenate([weak.npy(f"preds_{s}") for s in W2S_SPLITS]).astype(np.float32)
        [smoothed] = smooth_weak_labels(ctx, encode, examples, weak_p, [setting])
        n_tr = len(ctx.splits.examples["w2s_train"])
        w.npy("smoothed_w2s_train", smoothed.labels[:n_tr])
        w.npy("smoothed_w2s_val", smoothed.labels[n_tr:])
        info = {**smoothed.graph, "output": sel.smoothed_output}
        w.json("graph", info)
        return info

    return run_cached(ctx.cache_root, "smooth", config, inputs, compute, force=ctx.force)


STAGE = Stage("smooth", ("encode", "weak", "calibrate"), run_smooth,
              "kNN graph of the w2s embeddings; weak labels spread over it at calibrate's chosen setting")
