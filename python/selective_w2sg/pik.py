"""P(IK): a probe that predicts, from the strong model's frozen features, whether the strong
model's own zero-shot answer (its self-label) is right.

Trained on `weak_train`, where ground truth is known: target 1 where the self-label agrees
with the gold label. Reported with AUROC and calibration (ECE, reliability curve) on held-out
data, and cross-task (train on task A, score on task B)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import opt
from .errors import InputError, ParameterError


C_GRID = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class PikConfig:
    kind: str = field(default="logreg", metadata=opt(
        "P(IK) probe: logreg (standardised logistic regression) | mlp (one hidden layer).", "--pik"))
    # None: chosen from C_GRID by 5-fold cross-validated log-loss on the training data (folds by
    # question), so features that carry no signal get a flat probe.
    C: float | None = field(default=None, metadata=opt(
        "P(IK) inverse L2 strength (default: cross-validated on weak_train).", "--pik-c"))
    hidden: int = field(default=64, metadata=opt("P(IK) MLP hidden width.", "--pik-hidden"))
    max_iter: int = field(default=2000, metadata=opt("P(IK) optimiser iterations.", "--pik-max-iter"))
    seed: int = field(default=0, metadata=opt("P(IK) initialisation seed.", "--pik-seed"))

    def __post_init__(self) -> None:
        if self.kind not in ("logreg", "mlp"):
            raise ParameterError(f"P(IK) kind={self.kind!r} is not 'logreg' or 'mlp'")
        if self.C is not None and not self.C > 0:
            raise ParameterError(f"P(IK) C={self.C} must be > 0")


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


@dataclass
class PikProbe:
    """Standardised logistic regression (or a small MLP) from features ``(n, d)`` to P(IK)."""

    config: PikConfig = field(default_factory=PikConfig)
    _model: Any = field(default=None, repr=False)
    chosen_C: float | None = None  # the C used (config.C, or the cross-validated choice)
    cv_log_loss: dict[str, float] = field(default_factory=dict)  # C -> mean held-out log-loss

    def fit(self, features: np.ndarray, knows: np.ndarray, groups: np.ndarray | None = None) -> PikProbe:
        """features: ``(n, d)`` float; knows: ``(n,)`` bool, True where the self-label is right;
        groups: ``(n,)`` question ids, so cross-validation never splits a question's examples."""
        x = _features(features)
        y = np.asarray(knows).astype(bool)
        if y.shape != (x.shape[0],):
            raise InputError(f"P(IK) targets have shape {y.shape}, expected ({x.shape[0]},)")
        if y.all() or not y.any():
            raise InputError(
                f"P(IK) targets are all {bool(y[0])}: the self-labels are {'all right' if y[0] else 'all wrong'} "
                "on the training split, so there is nothing to probe"
            )
        if self.config.kind not in ("logreg", "mlp"):
            raise ParameterError(f"P(IK) kind={self.config.kind!r} is not 'logreg' or 'mlp'")
        self.cv_log_loss = {}
        c = self.config.C
        if c is None:
            c = self._cross_validate(x, y, groups)
        elif not c > 0:
            raise ParameterError(f"P(IK) C={c} must be > 0")
        self.chosen_C = float(c)
        self._model = self._make(c).fit(x, y)
        return self

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
        the smallest C when a fold cannot be fitted (one class only)."""
        from sklearn.model_selection import GroupKFold

        g = np.arange(len(y)) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        n_splits = min(5, len(np.unique(g)))
        if n_splits < 2:
            return C_GRID[0]
        folds = list(GroupKFold(n_splits=n_splits).split(x, y, g))
        best, best_c = float("inf"), C_GRID[0]
        for c in C_GRID:
            losses = []
            for tr, te in folds:
                if y[tr].all() or not y[tr].any():
                    continue
                p = np.clip(self._make(c).fit(x[tr], y[tr]).predict_proba(x[te])[:, 1], 1e-6, 1 - 1e-6)
                losses.append(float(-np.mean(np.where(y[te], np.log(p), np.log(1 - p)))))
            if losses:
                loss = float(np.mean(losses))
                self.cv_log_loss[f"{c:g}"] = loss
                if loss < best:
                    best, best_c = loss, c
        return best_c

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(IK) per row, ``(n,)`` float32."""
        if self._model is None:
            raise InputError("PikProbe.predict called before fit")
        return self._model.predict_proba(_features(features))[:, 1].astype(np.float32)

    def evaluate(self, features: np.ndarray, knows: np.ndarray) -> dict[str, Any]:
        p = self.predict(features)
        y = np.asarray(knows).astype(bool)
        return {"auroc": auroc(y, p), "base_rate": float(y.mean()), "n": int(len(y)), **reliability(y, p)}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.config), "chosen_C": self.chosen_C, "cv_log_loss": dict(self.cv_log_loss)}


def _features(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise InputError(f"P(IK) features must be (n, d), got shape {a.shape}")
    if not np.isfinite(a).all():
        row = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise InputError(f"P(IK) features row {row} has NaN or inf")
    return a
