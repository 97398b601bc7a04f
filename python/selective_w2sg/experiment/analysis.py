"""Analysis, never fed back into training: how accurate each label source is against the hidden
w2s_train ground truth, P(IK) quality, and cross-task P(IK) (train on one task's weak_train,
score on another's test split). Like `evaluation/`, this module reads hidden ground truth; no
stage does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .cache import StageDir
from .models import model_fingerprint
from ..graph.errors import ConfigError, InputError
from .pik import PikProbe, auroc, reliability
from .selection import group_mean
from .stages import STUDENTS
from .stages.students import decisions
from .stages.base import StageContext
from .stages.encode import load_encoded, run_encode


def analyse(ctx: StageContext, stages: Mapping[str, StageDir]) -> dict[str, Any]:
    """For analysis only (never fed back into training): accuracy of each label source against
    the hidden w2s_train ground truth, each selection student's coverage (share of w2s_train
    questions on self-labels), P(IK) quality, graph and encode summaries. The selection students'
    labels and coverage are their `decide-<name>` stages' outputs, the ones they trained on."""
    if "select" not in stages:
        return {}
    y = ctx.splits.labels("w2s_train") == 1
    sel, pik, smooth, weak = stages["select"], stages["pik"], stages["smooth"], stages["weak"]
    self_l = sel.npy("self_w2s_train")

    def acc(p: np.ndarray, mask: np.ndarray | slice = slice(None)) -> float:
        return float(np.mean((np.asarray(p)[mask] > 0.5) == y[mask]))

    label_acc = {"weak": acc(weak.npy("preds_w2s_train")), "smoothed": acc(smooth.npy("smoothed_w2s_train")),
                 "self": acc(self_l)}
    coverage: dict[str, float] = {}
    for name, st in STUDENTS.items():
        if st.decision is None or name not in stages:  # the students that ran
            continue
        chosen = decisions(stages[st.decision.name], "w2s_train")
        label_acc[name] = acc(chosen.labels)
        coverage[name] = chosen.coverage
    out: dict[str, Any] = {"label_accuracy_w2s_train": label_acc, "coverage_w2s_train": coverage,
                           "pik": pik.json("metrics"), "graph": smooth.json("graph"),
                           "calibrate": stages["calibrate"].summary()}
    if "selective" in stages:
        use = decisions(stages[STUDENTS["selective"].decision.name], "w2s_train").use_self  # type: ignore[union-attr]
        out["self_label_accuracy_where_selected"] = float(np.mean(self_l[use] == y[use])) if use.any() else None
        out["weak_accuracy_where_selected"] = acc(weak.npy("preds_w2s_train"), use) if use.any() else None
    knows = self_l == y
    out["pik_w2s_train"] = {"auroc": auroc(knows, sel.npy("pik_w2s_train")),
                            "confidence_auroc": auroc(knows, sel.npy("confidence_w2s_train")),
                            **reliability(knows, sel.npy("pik_w2s_train"))}
    out["encode"] = stages["encode"].summary()
    if "tune" in stages:
        out["tune"] = stages["tune"].json("tune")
    out["pik_difficulty"] = pik_difficulty(ctx, stages)
    return out


def pik_difficulty(ctx: StageContext, stages: Mapping[str, StageDir]) -> dict[str, Any]:
    """P(IK) across difficulties. A question's difficulty is the weak model's margin |p - 0.5|
    averaged over its examples (weak_train: the out-of-fold weak labels of `calibrate`; test: the
    weak model's own predictions), which reads no gold label of the split it partitions. A probe
    trained on the easier half of weak_train (margin at or above its median) is scored on the
    harder questions of test (margin below that median), beside the strong model's confidence on
    the same questions and a probe trained on all of weak_train. Question-level AUROC."""
    sel = ctx.selective
    enc = load_encoded(stages["encode"])

    def part(split: str, margin_src: np.ndarray) -> tuple[Any, ...]:
        ex = ctx.splits.examples[split]
        x, conf = enc.pik_inputs(ex, sel.pik_confidence_inputs, sel.self_labels)
        knows = enc.self_labels(ex, sel.self_labels) == ctx.splits.labels(split)
        qids = np.array([e.question_id for e in ex])
        _, q = np.unique(qids, return_inverse=True)
        margin = group_mean(np.abs(np.asarray(margin_src, dtype=np.float64) - 0.5), q)
        return x, conf, knows, qids, margin

    xw, cw, kw, qw, mw = part("weak_train", stages["calibrate"].npy("oof_raw"))
    xt, ct, kt, qt, mt = part("test", stages["weak"].npy("preds_test"))
    threshold = float(np.median(mw))
    easy, hard = mw >= threshold, mt < threshold
    out: dict[str, Any] = {"threshold": threshold, "n_easy_train": int(easy.sum()), "n_hard_test": int(hard.sum())}
    pick = lambda a, m: None if a is None else a[m]  # noqa: E731
    keep = ("question_auroc", "confidence_question_auroc", "auroc", "base_rate", "n_questions")
    for name, mask in (("easy_to_hard", easy), ("all_to_hard", np.ones(len(kw), bool))):
        try:
            probe = PikProbe(sel.pik_config).fit(xw[mask], kw[mask], groups=qw[mask], confidence=pick(cw, mask))
            m = probe.evaluate(xt[hard], kt[hard], pick(ct, hard), qt[hard])
            out[name] = {k: m[k] for k in keep if k in m}
        except InputError as e:  # one class only on a half: nothing to fit or score
            out[name] = {"skipped": str(e)}
    return out


def pik_transfer(contexts: Mapping[str, StageContext], train_tasks: list[str], eval_tasks: list[str],
                 ) -> dict[str, dict[str, dict[str, Any]]]:
    """Cross-task P(IK): for each train task A, a probe fitted on A's weak_train; scored on each
    eval task B's test split (AUROC, ECE against whether the strong model's self-label is right
    there). Every context must use the same strong model. Returns {A: {B: metrics}}."""
    strong = {model_fingerprint(c.strong) for c in contexts.values()}
    if len(strong) != 1:
        raise ConfigError("cross-task P(IK) needs one strong model for every task")
    encoded = {t: load_encoded(run_encode(contexts[t])) for t in {*train_tasks, *eval_tasks}}

    def inputs(task: str, split: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
        ctx, enc = contexts[task], encoded[task]
        ex, sel = ctx.splits.examples[split], ctx.selective
        knows = enc.self_labels(ex, sel.self_labels) == ctx.splits.labels(split)
        x, conf = enc.pik_inputs(ex, sel.pik_confidence_inputs, sel.self_labels)
        return x, conf, knows, np.array([f"{task}/{e.question_id}" for e in ex])

    def fit(tasks: list[str]) -> PikProbe:
        parts = [inputs(t, "weak_train") for t in tasks]
        conf = None if any(p[1] is None for p in parts) else np.concatenate([p[1] for p in parts])  # type: ignore[misc]
        return PikProbe(contexts[tasks[0]].selective.pik_config).fit(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[2] for p in parts]),
            groups=np.concatenate([p[3] for p in parts]), confidence=conf)

    keep = ("auroc", "question_auroc", "confidence_auroc", "confidence_question_auroc", "ece", "base_rate", "n",
            "n_questions")

    def score(probe: PikProbe, b: str) -> dict[str, Any]:
        xb, cb, yb, qb = inputs(b, "test")
        m = probe.evaluate(xb, yb, cb, qb)
        return {**{k: m[k] for k in keep if k in m}, "chosen": probe.chosen}

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for a in train_tasks:
        probe = fit([a])
        out[a] = {b: score(probe, b) for b in eval_tasks}
    # Pooled: for each target, one probe on every other train task's weak_train (never the target's).
    if len(train_tasks) > 1:
        out["others"] = {}
        for b in eval_tasks:
            others = [t for t in train_tasks if t != b]
            if others:
                out["others"][b] = score(fit(others), b)
    return out
