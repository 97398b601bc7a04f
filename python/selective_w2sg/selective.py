"""The selective method's stages (DESIGN.md §1, stages 3-6) and its students.

    encode  ONE frozen pass of the pretrained strong model over every option of every question
            (`encode.py`): graph embeddings, P(IK) features, self-labels. Keyed by the strong
            model and the set of questions, so seeds that share questions share the pass. Its
            last-layer features also seed the probe-mode feature cache (no second pass).
    pik     P(IK) probe on weak_train (target: the self-label is right); held-out AUROC/ECE on a
            question-level slice of weak_train; P(IK) on every split.
    smooth  kNN graph over the w2s_train + w2s_val embeddings (Rust core), label spreading of the
            weak soft labels.
    select  calibrates the weak model's confidence on its held-out slice of weak_train, then
            builds the training labels of the students `selective`, `pik_only`, `smooth_only`.

Stage folders (under `<cache>/<stage>/<key>/`, see cache.py):
    encode/  embedding.npy hidden.npy features.npy (n_options, d) float32; option_prob.npy,
             is_own_answer.npy (n_options,) float32; offsets.json {question_id: first row}
    pik/     pik_<split>.npy, self_<split>.npy (n_examples,) float32 (P(IK); the self-labels it
             judges, 1 where the example's candidate is the strong model's answer); metrics.json
    smooth/  smoothed_w2s_train.npy, smoothed_w2s_val.npy (n,) float32; graph.json
    select/  labels_<student>_<split>.npy, use_self_<student>_<split>.npy; selection.json
No stage here reads test ground truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from .cache import StageDir, run_cached
from .encode import EncodedQuestions, EncodeStats, encode_questions, middle_layer
from .graph import knn_graph
from .pik import PikProbe, auroc, reliability
from .select import Selection, select_labels, weak_confidence
from .smoothing import SmoothResult, smooth_labels
from .stages import (
    STUDENTS, StageContext, StudentSpec, _guard_oom, center_by_question, store_features, weak_val_mask,
)
from .tasks import SPLITS, hash_seed

SELECTIVE_STUDENTS = ("selective", "pik_only", "smooth_only")
W2S_SPLITS = ("w2s_train", "w2s_val")
ENCODE_FORMAT = 3  # bump when the encode stage's outputs change, so old cache folders are not reused


def _all_questions(ctx: StageContext) -> list[Any]:
    qs = [q for s in SPLITS for q in ctx.splits.questions[s]]
    return sorted(qs, key=lambda q: q.question_id)


def run_encode(ctx: StageContext) -> StageDir:
    cfg = ctx.train
    questions = _all_questions(ctx)
    config = {"format": ENCODE_FORMAT, "model": ctx.strong.fingerprint, "model_name": ctx.strong.name,
              "feature_layer": ctx.selective.feature_layer, "max_length": cfg.max_length}
    h = hashlib.sha256()
    for q in questions:
        h.update(json.dumps([q.question_id, q.question, list(q.options)]).encode())  # no gold: not needed
    inputs = {"questions": h.hexdigest()[:16]}

    def compute(w: Any) -> dict[str, Any]:
        bb = ctx.frozen_backbone(ctx.strong)
        stats = EncodeStats()
        total = sum(len(q.options) for q in questions)
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            ctx.report(f"encode {ctx.strong.name}", done[0], total)

        enc = encode_questions(bb, questions, feature_layer=ctx.selective.feature_layer,
                               batch_size=ctx.selective.encode_batch_size, max_length=cfg.max_length,
                               device=ctx.device, progress=tick, stats=stats)
        for name in ("embedding", "hidden", "features", "option_prob", "is_own_answer", "question_confidence",
                     "question_entropy"):
            w.npy(name, getattr(enc, name))
        w.json("offsets", enc.offsets)
        layer = middle_layer(bb) if ctx.selective.feature_layer is None else ctx.selective.feature_layer
        return {"texts": stats.texts, "forward_calls": stats.forward_calls, "seconds": stats.wall_s,
                "feature_layer": layer, "is_causal": bb.is_causal}

    d = _guard_oom(lambda: run_cached(ctx.cache_root, "encode", config, inputs, compute, force=ctx.force),
                   f"encode pass with {ctx.strong.name}")
    if cfg.pooling in (None, "auto") and cfg.layer == -1:
        enc = load_encoded(d)
        for split in SPLITS:
            rows = enc.rows(ctx.splits.examples[split])
            store_features(ctx, ctx.strong, split, -1, lambda rows=rows: enc.hidden[rows])
    return d


def load_encoded(d: StageDir) -> EncodedQuestions:
    return EncodedQuestions(
        offsets=d.json("offsets"),
        embedding=d.npy("embedding", mmap=True),
        hidden=d.npy("hidden", mmap=True),
        features=d.npy("features", mmap=True),
        option_prob=d.npy("option_prob"),
        is_own_answer=d.npy("is_own_answer"),
        question_confidence=d.npy("question_confidence"),
        question_entropy=d.npy("question_entropy"),
    )


def run_pik(ctx: StageContext, encode: StageDir) -> StageDir:
    """P(IK) probe: trained on weak_train (ground truth allowed there), scored everywhere."""
    sel = ctx.selective
    config = {"pik": asdict(sel.pik), "pik_confidence_inputs": sel.pik_confidence_inputs,
              "self_label_among": sel.self_label_among, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, **{s: ctx.splits.fingerprint(s) for s in SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        enc = load_encoded(encode)
        ex = ctx.splits.examples["weak_train"]
        x = enc.pik_inputs(ex, sel.pik_confidence_inputs, sel.self_label_among)
        knows = enc.self_labels(ex, sel.self_label_among) == ctx.splits.labels("weak_train")
        # Held-out quality on a question-level slice of weak_train, then refit on all of it.
        held = np.array([hash_seed(ctx.seed, "pik-heldout", e.question_id) % 5 == 0 for e in ex])
        metrics: dict[str, Any] = {"train_base_rate": float(knows.mean()), "n_train": int(len(knows))}
        qids = np.array([e.question_id for e in ex])
        if knows[~held].any() and not knows[~held].all() and held.any():
            probe = PikProbe(sel.pik).fit(x[~held], knows[~held], groups=qids[~held])
            metrics["heldout"] = probe.evaluate(x[held], knows[held])
        probe = PikProbe(sel.pik).fit(x, knows, groups=qids)
        metrics["probe"] = probe.to_dict()
        for s in SPLITS:
            exs = ctx.splits.examples[s]
            w.npy(f"pik_{s}", probe.predict(enc.pik_inputs(exs, sel.pik_confidence_inputs, sel.self_label_among)))
            w.npy(f"self_{s}", enc.self_labels(exs, sel.self_label_among))
        w.json("metrics", metrics)
        return {"heldout_auroc": metrics.get("heldout", {}).get("auroc")}

    return run_cached(ctx.cache_root, "pik", config, inputs, compute, force=ctx.force)


def run_smooth(ctx: StageContext, encode: StageDir, weak: StageDir) -> StageDir:
    """Label spreading of the weak soft labels over the kNN graph of the w2s embeddings."""
    sel = ctx.selective
    config = {"k": sel.k, "alpha": sel.alpha, "iters": sel.smooth_iters, "method": sel.graph_method,
              "center": sel.graph_center, "seed": ctx.seed}
    inputs = {"encode": encode.path.name, "weak": weak.path.name,
              **{s: ctx.splits.fingerprint(s) for s in W2S_SPLITS}}

    def compute(w: Any) -> dict[str, Any]:
        enc = load_encoded(encode)
        examples = [e for s in W2S_SPLITS for e in ctx.splits.examples[s]]
        emb = np.asarray(enc.embedding[enc.rows(examples)])
        if sel.graph_center:
            emb = center_by_question(emb, [e.question_id for e in examples])
        weak_p = np.concatenate([weak.npy(f"preds_{s}") for s in W2S_SPLITS]).astype(np.float32)
        # A question whose examples embed identically has no direction left after centring: it
        # keeps its weak label and stays out of the graph.
        on_graph = np.linalg.norm(emb, axis=1) > 1e-6
        smoothed = weak_p.copy()
        k = min(sel.k, int(on_graph.sum()) - 1)
        method, recall, iters, converged, residual = None, None, 0, True, 0.0
        if k >= 1:
            graph = knn_graph(emb[on_graph], k, metric="cosine", method=sel.graph_method, seed=ctx.seed)
            res = smooth_labels(graph, weak_p[on_graph], alpha=sel.alpha, max_iter=sel.smooth_iters,
                                return_info=True)
            assert isinstance(res, SmoothResult)
            smoothed[on_graph] = res.labels
            method, recall = graph.method, graph.estimated_recall
            iters, converged, residual = res.iterations, res.converged, res.residual
        n_tr = len(ctx.splits.examples["w2s_train"])
        w.npy("smoothed_w2s_train", smoothed[:n_tr])
        w.npy("smoothed_w2s_val", smoothed[n_tr:])
        info = {"n": int(len(emb)), "on_graph": int(on_graph.sum()), "k": k, "method": method,
                "estimated_recall": recall, "centered": sel.graph_center,
                "iterations": iters, "converged": converged, "residual": residual,
                "mean_abs_change": float(np.mean(np.abs(smoothed - weak_p)))}
        w.json("graph", info)
        return info

    return run_cached(ctx.cache_root, "smooth", config, inputs, compute, force=ctx.force)


def calibrate_weak(ctx: StageContext, weak: StageDir) -> Any:
    """Isotonic map from the weak model's confidence max(p, 1-p) to P(its hard label is right),
    fitted on the slice of weak_train the weak model did not train on (its early-stopping slice)."""
    from sklearn.isotonic import IsotonicRegression

    held = weak_val_mask(ctx.splits, ctx.seed)
    p = np.asarray(weak.npy("preds_weak_train"))[held]
    right = (p > 0.5) == (ctx.splits.labels("weak_train")[held] == 1)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    return iso.fit(weak_confidence(p), right.astype(np.float64))


def run_select(ctx: StageContext, encode: StageDir, pik: StageDir, smooth: StageDir, weak: StageDir) -> StageDir:
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


def run_selective_stages(ctx: StageContext, stages: Mapping[str, StageDir]) -> dict[str, StageDir]:
    """encode -> pik -> smooth -> select; each cached, so later students reuse them."""
    if "select" in stages:
        return {}
    ctx.selective.validate()
    out: dict[str, StageDir] = {"encode": run_encode(ctx)}
    out["pik"] = run_pik(ctx, out["encode"])
    out["smooth"] = run_smooth(ctx, out["encode"], stages["weak"])
    out["select"] = run_select(ctx, out["encode"], out["pik"], out["smooth"], stages["weak"])
    return out


def _selected(name: str) -> Any:
    def labels(ctx: StageContext, stages: Mapping[str, StageDir]) -> tuple[np.ndarray, np.ndarray]:
        d = stages["select"]
        return d.npy(f"labels_{name}_w2s_train"), d.npy(f"labels_{name}_w2s_val")

    return labels


for _name, _desc in (
    ("selective", "self-labels where P(IK) says the strong model knows, smoothed weak labels elsewhere"),
    ("pik_only", "ablation: self-labels where P(IK) says so, raw weak labels elsewhere"),
    ("smooth_only", "ablation: smoothed weak labels everywhere"),
):
    STUDENTS[_name] = StudentSpec(_name, "xent", _selected(_name), _desc, prerequisites=run_selective_stages)


def analyse(ctx: StageContext, stages: Mapping[str, StageDir]) -> dict[str, Any]:
    """For analysis only (never fed back into training): accuracy of each label source against
    the hidden w2s_train ground truth, coverage, P(IK) quality, graph and encode summaries."""
    if "select" not in stages:
        return {}
    y = ctx.splits.labels("w2s_train") == 1
    sel, pik, smooth, weak = stages["select"], stages["pik"], stages["smooth"], stages["weak"]
    self_l = pik.npy("self_w2s_train")
    def acc(p: np.ndarray, mask: np.ndarray | slice = slice(None)) -> float:
        return float(np.mean((np.asarray(p)[mask] > 0.5) == y[mask]))

    out: dict[str, Any] = {
        "label_accuracy_w2s_train": {
            "weak": acc(weak.npy("preds_w2s_train")),
            "smoothed": acc(smooth.npy("smoothed_w2s_train")),
            "self": acc(self_l),
            **{n: acc(sel.npy(f"labels_{n}_w2s_train")) for n in ("selective", "pik_only")},
        },
        "coverage_w2s_train": {n: float(np.mean(sel.npy(f"use_self_{n}_w2s_train")))
                               for n in ("selective", "pik_only")},
        "pik": pik.json("metrics"),
        "graph": smooth.json("graph"),
    }
    use = sel.npy("use_self_selective_w2s_train").astype(bool)
    out["self_label_accuracy_where_selected"] = float(np.mean(self_l[use] == y[use])) if use.any() else None
    out["weak_accuracy_where_selected"] = acc(weak.npy("preds_w2s_train"), use) if use.any() else None
    p_ik = pik.npy("pik_w2s_train")
    knows = self_l == y
    out["pik_w2s_train"] = {"auroc": auroc(knows, p_ik), **reliability(knows, p_ik)}
    done = stages["encode"].path / "DONE.json"
    out["encode"] = json.loads(done.read_text()).get("summary", {})
    return out


def pik_transfer(contexts: Mapping[str, StageContext], train_tasks: list[str], eval_tasks: list[str],
                 ) -> dict[str, dict[str, dict[str, Any]]]:
    """Cross-task P(IK): for each train task A, a probe fitted on A's weak_train; scored on each
    eval task B's test split (AUROC, ECE against whether the strong model's self-label is right
    there). Every context must use the same strong model. Returns {A: {B: metrics}}."""
    from .errors import ConfigError

    strong = {c.strong.fingerprint for c in contexts.values()}
    if len(strong) != 1:
        raise ConfigError("cross-task P(IK) needs one strong model for every task")
    encoded = {t: load_encoded(run_encode(contexts[t])) for t in {*train_tasks, *eval_tasks}}

    def inputs(task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        ctx, enc = contexts[task], encoded[task]
        ex, sel = ctx.splits.examples[split], ctx.selective
        knows = enc.self_labels(ex, sel.self_label_among) == ctx.splits.labels(split)
        return enc.pik_inputs(ex, sel.pik_confidence_inputs, sel.self_label_among), knows

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for a in train_tasks:
        x, y = inputs(a, "weak_train")
        qids = np.array([e.question_id for e in contexts[a].splits.examples["weak_train"]])
        probe = PikProbe(contexts[a].selective.pik).fit(x, y, groups=qids)
        out[a] = {}
        for b in eval_tasks:
            xb, yb = inputs(b, "test")
            m = probe.evaluate(xb, yb)
            out[a][b] = {"auroc": m["auroc"], "ece": m["ece"], "base_rate": m["base_rate"], "n": m["n"]}
    return out
