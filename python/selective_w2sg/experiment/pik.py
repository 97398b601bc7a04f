"""P(IK): a probe that predicts, from the strong model's frozen features, whether the strong
model's own zero-shot answer (its self-label) is right.

Trained on `weak_train`, where ground truth is known: target 1 where the self-label agrees
with the gold label. The strong model's confidence in its own answer is the strongest single
input, so the default probe ("anchored") takes it unpenalised and learns only a penalised
correction from hidden states, with "confidence alone" and "base rate" as candidates of its
cross-validation. Reported with AUROC (per example and per question, beside the confidence
baseline) and calibration (ECE, reliability curve) on held-out data, and cross-task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import KINDS, PikConfig
from ..graph.errors import InputError, ParameterError
from .linear import C_GRID, fit_penalised_logistic, logit
from .stats import simplest_within_one_se


# With the confidence-only and base-rate candidates below the grid (an infinitely strong penalty),
# its lower edge never has to stand in for "no correction"; `edge_chosen` reports when either
# edge wins all the same.
def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Equal-width reliability curve and expected calibration error (ECE)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    conf, acc, count = [], [], []
    ece = 0.0
    for b in range(bins):
        m = which == b
        count.append(int(m.sum()))
        if m.any():
            conf.append(float(p[m].mean()))
            acc.append(float(y[m].mean()))
            ece += m.mean() * abs(acc[-1] - conf[-1])
        else:
            conf.append(float("nan"))
            acc.append(float("nan"))
    return {"ece": float(ece), "bin_confidence": conf, "bin_accuracy": acc, "bin_count": count}


def question_level(groups: np.ndarray | None, knows: np.ndarray, *scores: np.ndarray
                   ) -> tuple[np.ndarray, ...]:
    """The unit selection acts on: per question, "knows" = every example's self-label is right,
    and each score is the mean over the question's examples. Returns (knows_q, *scores_q);
    with `groups` None every example is its own question."""
    y = np.asarray(knows).astype(bool)
    if groups is None:
        return (y, *(np.asarray(v, dtype=np.float64) for v in scores))
    _, q = np.unique(np.asarray(groups), return_inverse=True)
    count = np.bincount(q)
    known = np.bincount(q, weights=y.astype(np.float64)) == count
    return (known, *(np.bincount(q, weights=np.asarray(v, dtype=np.float64)) / count for v in scores))


def confidence_log_odds(confidence: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """log(c / (1 - c)) of the strong model's confidence in its own answer, float64 (n,)."""
    c = np.asarray(confidence, dtype=np.float64)
    if c.ndim != 1 or not np.isfinite(c).all():
        raise InputError(f"P(IK) confidence must be a finite (n,) array, got shape {c.shape}")
    return logit(c, eps)


class _OffsetLogistic:
    """logit = b0 + b1 * z + (hidden-state correction, L2-penalised with strength 1 / C), with
    (b0, b1) unpenalised (`linear.fit_penalised_logistic`). `C=None`: no correction;
    `use_conf=False`: no confidence term."""

    def __init__(self, C: float | None, use_conf: bool, max_iter: int) -> None:
        self.C, self.use_conf, self.max_iter = C, use_conf, max_iter

    def _fixed(self, n: int, z: np.ndarray | None) -> np.ndarray:
        return np.stack([np.ones(n)] + ([z] if self.use_conf and z is not None else []), axis=1)

    def fit(self, x: np.ndarray, z: np.ndarray | None, y: np.ndarray) -> _OffsetLogistic:
        self.model = fit_penalised_logistic(x, np.asarray(y, dtype=np.float64), C=self.C,
                                            fixed=self._fixed(len(x), z), max_iter=self.max_iter)
        return self

    def predict_proba1(self, x: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        return self.model.predict(x, self._fixed(len(x), z))


@dataclass
class PikProbe:
    """P(IK) from features ``(n, d)`` (and, for kind "anchored", the strong model's confidence in
    its own answer ``(n,)``).

    kind "anchored": logit = b0 + b1 * log-odds(confidence) + a correction from the standardised
    hidden states, with only the correction penalised. Cross-validation (5 folds by question,
    held-out log-loss) chooses among the base rate alone, confidence alone and confidence plus the
    correction at each C of C_GRID, so the probe is never forced below its best single input:
    where the hidden states add nothing the flat choices win. kinds "logreg" / "mlp": the
    confidence columns (if any) are plain features beside the hidden states, all under one penalty."""

    config: PikConfig = field(default_factory=PikConfig)
    _model: Any = field(default=None, repr=False)
    chosen_C: float | None = None  # the C used (config.C, or the cross-validated choice); None: no correction
    chosen: str | None = None  # anchored: "base_rate" | "confidence" | "correction"
    edge_chosen: bool = False  # the chosen C is an end of C_GRID (the grid may be too narrow)
    cv_log_loss: dict[str, float] = field(default_factory=dict)  # candidate -> mean held-out log-loss
    _uses_conf: bool = field(default=False, repr=False)

    def fit(self, features: np.ndarray, knows: np.ndarray, groups: np.ndarray | None = None,
            confidence: np.ndarray | None = None) -> PikProbe:
        """features: ``(n, d)`` float; knows: ``(n,)`` bool, True where the self-label is right;
        groups: ``(n,)`` question ids, so cross-validation never splits a question's examples;
        confidence: ``(n,)`` the strong model's probability of its own answer (kind "anchored")."""
        x = _features(features)
        y = np.asarray(knows).astype(bool)
        if y.shape != (x.shape[0],):
            raise InputError(f"P(IK) targets have shape {y.shape}, expected ({x.shape[0]},)")
        if y.all() or not y.any():
            raise InputError(
                f"P(IK) targets are all {bool(y[0])}: the self-labels are {'all right' if y[0] else 'all wrong'} "
                "on the training split, so there is nothing to probe"
            )
        if self.config.kind not in KINDS:
            raise ParameterError(f"P(IK) kind={self.config.kind!r} is not one of {', '.join(map(repr, KINDS))}")
        z = None
        if confidence is not None:
            z = confidence_log_odds(confidence)
            if z.shape != y.shape:
                raise InputError(f"P(IK) confidence has shape {z.shape}, expected {y.shape}")
        self.cv_log_loss = {}
        if self.config.kind == "anchored":
            self._fit_anchored(x, z, y, groups)
            return self
        if z is not None:
            x = np.concatenate([x, z[:, None].astype(np.float32)], axis=1)
        c = self.config.C
        if c is None:
            c = self._cross_validate(x, y, groups)
        elif not c > 0:
            raise ParameterError(f"P(IK) C={c} must be > 0")
        self.chosen_C = float(c)
        self.edge_chosen = self.config.C is None and c in (C_GRID[0], C_GRID[-1])
        self._model = self._make(c).fit(x, y)
        return self

    # ---------------------------------------------------------------- anchored

    def _candidates(self, has_conf: bool) -> list[tuple[str, float | None, bool]]:
        """(name, C, uses confidence), in the order the one-standard-error rule prefers them:
        confidence alone first (the probe's reference: it is never to end below it by noise),
        then the base rate (chosen only where it beats confidence by more than noise, e.g. a
        confidence that ranks backwards), then the correction from the strongest penalty up."""
        if self.config.C is not None:  # a fixed strength: that correction, no cross-validation
            return [("correction", self.config.C, has_conf)]
        cands: list[tuple[str, float | None, bool]] = []
        if has_conf:
            cands.append(("confidence", None, True))
        cands.append(("base_rate", None, False))
        return cands + [("correction", c, has_conf) for c in C_GRID]

    def _fit_anchored(self, x: np.ndarray, z: np.ndarray | None, y: np.ndarray, groups: np.ndarray | None) -> None:
        """Cross-validated choice by the one-standard-error rule: the first candidate (see
        `_candidates`) whose held-out log-loss is within one standard error (of its per-question
        difference from the best candidate's) of the best. A correction must beat confidence alone
        by more than fold noise, so the choice is stable across re-splits."""
        cands = self._candidates(z is not None)
        folds = _group_folds(y, groups)
        pick = cands[-1]
        if folds and len(cands) > 1:
            covered = np.zeros(len(y), bool)
            for _, te in folds:
                covered[te] = True
            ids = np.asarray(groups)[covered] if groups is not None else np.flatnonzero(covered)
            g = np.unique(ids, return_inverse=True)[1]  # question index among the held-out rows
            losses = np.zeros((len(cands), len(y)))
            for i, (name, c, use_conf) in enumerate(cands):
                for tr, te in folds:
                    m = _OffsetLogistic(c, use_conf, self.config.max_iter).fit(
                        x[tr], None if z is None else z[tr], y[tr])
                    p = np.clip(m.predict_proba1(x[te], None if z is None else z[te]), 1e-6, 1 - 1e-6)
                    losses[i, te] = -np.where(y[te], np.log(p), np.log(1 - p))
                self.cv_log_loss[name if c is None else f"C={c:g}"] = float(losses[i, covered].mean())
            # per question, minus its summed held-out log-loss over the mean question size: a score
            # whose mean over questions is minus the mean log-loss per example
            per_q = np.stack([np.bincount(g, weights=losses[i, covered]) for i in range(len(cands))])
            score = -per_q / np.bincount(g).mean()
            pick = cands[simplest_within_one_se(score, range(len(cands)))[0]]  # preferred first (_candidates)
        name, c, use_conf = pick
        self.chosen, self.chosen_C = name, c
        self.edge_chosen = self.config.C is None and c is not None and c in (C_GRID[0], C_GRID[-1])
        self._model = _OffsetLogistic(c, use_conf, self.config.max_iter).fit(x, z, y)
        self._uses_conf = z is not None

    # ---------------------------------------------------------------- logreg / mlp

    def _make(self, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.config.kind == "logreg":
            head = LogisticRegression(C=c, max_iter=self.config.max_iter, random_state=self.config.seed)
        else:
            # L2 strength tied to C like the logistic regression's; no early stopping: on a few
            # hundred examples its 10% validation slice stops training far too soon.
            head = MLPClassifier(hidden_layer_sizes=(self.config.hidden,), alpha=0.1 / max(c, 1e-8),
                                 max_iter=self.config.max_iter, random_state=self.config.seed)
        return make_pipeline(StandardScaler(), head)

    def _cross_validate(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
        """The C of C_GRID with the lowest mean held-out log-loss over 5 folds (by group);
        the smallest C when no fold can be fitted."""
        folds = _group_folds(y, groups)
        best, best_c = float("inf"), C_GRID[0]
        for c in C_GRID if folds else ():
            losses = []
            for tr, te in folds:
                p = np.clip(self._make(c).fit(x[tr], y[tr]).predict_proba(x[te])[:, 1], 1e-6, 1 - 1e-6)
                losses.append(float(-np.mean(np.where(y[te], np.log(p), np.log(1 - p)))))
            loss = float(np.mean(losses))
            self.cv_log_loss[f"C={c:g}"] = loss
            if loss < best:
                best, best_c = loss, c
        return best_c

    # ---------------------------------------------------------------- use

    def predict(self, features: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
        """P(IK) per row, ``(n,)`` float32 (`confidence` as given to `fit`)."""
        if self._model is None:
            raise InputError("PikProbe.predict called before fit")
        x = _features(features)
        z = None if confidence is None else confidence_log_odds(confidence)
        if isinstance(self._model, _OffsetLogistic):
            if self._uses_conf and z is None:
                raise InputError("this P(IK) probe was fitted with the strong model's confidence; pass it to predict")
            return self._model.predict_proba1(x, z).astype(np.float32)
        if z is not None:
            x = np.concatenate([x, z[:, None].astype(np.float32)], axis=1)
        return self._model.predict_proba(x)[:, 1].astype(np.float32)

    def evaluate(self, features: np.ndarray, knows: np.ndarray, confidence: np.ndarray | None = None,
                 groups: np.ndarray | None = None) -> dict[str, Any]:
        """AUROC and calibration per example, and per question (the unit selection acts on),
        with the confidence baseline (the strong model's confidence alone) beside each AUROC."""
        p = self.predict(features, confidence)
        return score_pik(knows, p, confidence, groups)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.config), "chosen": self.chosen, "chosen_C": self.chosen_C,
                "edge_chosen": self.edge_chosen, "cv_log_loss": dict(self.cv_log_loss)}


def score_pik(knows: np.ndarray, p: np.ndarray, confidence: np.ndarray | None = None,
              groups: np.ndarray | None = None) -> dict[str, Any]:
    """P(IK) scores `p` (n,) against `knows` (n,) bool: example-level AUROC, base rate and
    calibration; question-level AUROC (`groups`: question ids); and the same AUROCs of
    `confidence` (n,), the baseline a trained P(IK) must beat."""
    y = np.asarray(knows).astype(bool)
    out: dict[str, Any] = {"auroc": auroc(y, p), "base_rate": float(y.mean()), "n": int(len(y)), **reliability(y, p)}
    scores = [p] if confidence is None else [p, confidence]
    yq, *sq = question_level(groups, y, *scores)
    out["question_auroc"] = auroc(yq, sq[0])
    out["n_questions"] = int(len(yq))
    if confidence is not None:
        out["confidence_auroc"] = auroc(y, confidence)
        out["confidence_question_auroc"] = auroc(yq, sq[1])
    return out


def _group_folds(y: np.ndarray, groups: np.ndarray | None, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to 5 folds by group whose training part holds both classes ([] when none can)."""
    from sklearn.model_selection import GroupKFold

    g = np.arange(len(y)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_splits = min(n_folds, len(np.unique(g)))
    if n_splits < 2:
        return []
    return [(tr, te) for tr, te in GroupKFold(n_splits=n_splits).split(np.zeros(len(y)), y, g)
            if y[tr].any() and not y[tr].all()]


def _features(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise InputError(f"P(IK) features must be (n, d), got shape {a.shape}")
    if not np.isfinite(a).all():
        row = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise InputError(f"P(IK) features row {row} has NaN or inf")
    return a
