"""Selection: per example, the strong model's self-label where P(IK) says it knows the answer,
else the (smoothed) weak label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.errors import InputError, ParameterError
from ..config import RULES

K_GRID = (5, 10, 20)
ALPHA_GRID = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)


@dataclass(frozen=True)
class Selection:
    labels: np.ndarray  # (n,) float32 soft labels for the student
    use_self: np.ndarray  # (n,) bool, True where the self-label was chosen

    @property
    def coverage(self) -> float:
        """Share of examples that take the self-label."""
        return float(self.use_self.mean()) if len(self.use_self) else 0.0


def weak_confidence(weak: np.ndarray) -> np.ndarray:
    """Confidence of a binary soft label: max(p, 1 - p)."""
    p = np.asarray(weak, dtype=np.float64)
    return np.maximum(p, 1 - p)


def select_labels(
    self_labels: np.ndarray,
    weak_labels: np.ndarray,
    pik: np.ndarray,
    *,
    rule: str = "compare",
    tau: float = 0.5,
    weak_conf: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> Selection:
    """Choose a training label per example.

    self_labels, weak_labels, pik: ``(n,)`` floats in [0, 1] (weak_labels may already be smoothed).
    rule: "tau" -- self-label where ``pik > tau``; "compare" -- parameter-free: self-label where
        P(IK) exceeds the weak label's own calibrated confidence (`weak_conf`, default
        ``max(p, 1-p)`` of `weak_labels`), i.e. where the strong model is more likely right than
        the weak supervisor.
    groups: ``(n,)`` question ids (any hashable values). Whether the strong model knows is a
        property of a question, so the decision is made per question: P(IK) and the confidence
        are averaged over its examples, and all its examples take the same kind of label."""
    s = _prob(self_labels, "self_labels")
    w = _prob(weak_labels, "weak_labels")
    p = _prob(pik, "pik")
    if not (s.shape == w.shape == p.shape):
        raise InputError(f"self_labels {s.shape}, weak_labels {w.shape} and pik {p.shape} must have one shape")
    if groups is not None:
        if len(groups) != len(p):
            raise InputError(f"groups has {len(groups)} entries, expected {len(p)}")
        _, q = np.unique(np.asarray(groups), return_inverse=True)
        p = group_mean(p, q)
    if rule == "tau":
        if not 0.0 <= tau <= 1.0:
            raise ParameterError(f"tau={tau} must be in [0, 1]")
        use = p > tau
    elif rule == "compare":
        conf = weak_confidence(w) if weak_conf is None else _prob(weak_conf, "weak_conf")
        if conf.shape != p.shape:
            raise InputError(f"weak_conf has shape {conf.shape}, expected {p.shape}")
        if groups is not None:
            conf = group_mean(conf, q)
        use = p > conf
    else:
        raise ParameterError(f"selection rule={rule!r} is not one of {', '.join(map(repr, RULES))}")
    return Selection(labels=np.where(use, s, w).astype(np.float32), use_self=use)


def group_mean(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each entry replaced by the mean over its group (`q`: group index per entry)."""
    return (np.bincount(q, weights=x.astype(np.float64)) / np.bincount(q))[q]


def _prob(a: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float32)
    if x.ndim != 1:
        raise InputError(f"{name} must be (n,), got shape {x.shape}")
    bad = ~np.isfinite(x) | (x < 0) | (x > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name} row {i} is {x[i]}, outside [0, 1]")
    return x
