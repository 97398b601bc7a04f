"""Selection: per example, the strong model's self-label where P(IK) says it knows the answer,
else the (smoothed) weak label."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..graph.errors import InputError, ParameterError
from ..config import opt
from .pik import PikConfig

RULES = ("tau", "compare")
GRAPH_EMBEDDINGS = ("last", "features")
# The smoothing settings `calibrate` chooses among when --k / --alpha / --graph-embedding are not given.
K_GRID = (5, 10, 20)
ALPHA_GRID = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9)


@dataclass(frozen=True)
class SelectiveConfig:
    """Settings of the selective method (encode -> P(IK) -> smooth -> select). Any tuning is
    done on weak_train or weak-labelled w2s_val, never on test."""

    k: int | None = field(default=None, metadata=opt(
        "Neighbours in the kNN graph over strong embeddings (default: chosen on weak_train, with --alpha)."))
    alpha: float | None = field(default=None, metadata=opt(
        "Label-spreading weight of the neighbours, [0, 1); 0 = no smoothing (default: chosen on weak_train by the "
        "question-level accuracy of the spread out-of-fold weak labels; 0 unless spreading beats it)."))
    graph_embedding: str | None = field(default=None, metadata=opt(
        "Embedding the graph is built on: last (the last layer, pooled) | features (the P(IK) feature layer) "
        "(default: chosen on weak_train with --k and --alpha)."))
    smoothed_output: str = field(default="rescaled", metadata=opt(
        "soft (labels as spread: flattened towards the mean) | rescaled (spread labels' log-odds scaled so their "
        "mean confidence equals the weak labels'; the same hard labels, no ground truth used)."))
    smooth_iters: int = field(default=50, metadata=opt("Label-spreading iterations (alpha=0.5 converges to 1e-6 in ~20)."))
    graph_method: str = field(default="auto", metadata=opt("kNN search: exact | approx | auto."))
    # A question's two examples share their context and have opposite labels, so uncentred they
    # would be each other's nearest neighbour.
    graph_center: bool = field(default=True, metadata=opt("Build the graph on question-centred embeddings."))
    rule: str = field(default="compare", metadata=opt(
        "compare: self-label where P(IK) > the calibrated probability that the other label is right | tau."))
    tau: float = field(default=0.5, metadata=opt("P(IK) threshold for --rule tau."))
    feature_layer: int | None = field(default=None, metadata=opt("Hidden layer of the P(IK) features (default: middle)."))
    pik_confidence_inputs: bool = field(default=True, metadata=opt(
        "Also feed P(IK) the strong model's own answer confidence."))
    self_label_among: str = field(default="presented", metadata=opt(
        "The strong model's own answer among the candidates a question's examples present (presented) or among "
        "all its options (all).", "--self-labels"))
    pik: PikConfig = field(default_factory=PikConfig)
    encode_batch_size: int = field(default=32, metadata=opt("Texts per forward pass of the encode stage."))
    encode_share_prefix: bool = field(default=True, metadata=opt(
        "Causal LMs: compute a question's context once and score every option from its key/value cache "
        "(equal to whole-text passes up to float rounding)."))

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise ParameterError(f"k={self.k} must be at least 1")
        if self.alpha is not None and not 0.0 <= self.alpha < 1.0:
            raise ParameterError(f"alpha={self.alpha} must be in [0, 1)")
        if self.graph_embedding not in (None, *GRAPH_EMBEDDINGS):
            raise ParameterError(f"graph_embedding={self.graph_embedding!r} is not one of {', '.join(GRAPH_EMBEDDINGS)}")
        if self.smoothed_output not in ("soft", "rescaled"):
            raise ParameterError(f"smoothed_output={self.smoothed_output!r} is not 'soft' or 'rescaled'")
        if self.rule not in RULES:
            raise ParameterError(f"selection rule={self.rule!r} is not one of {', '.join(map(repr, RULES))}")
        if not 0.0 <= self.tau <= 1.0:
            raise ParameterError(f"tau={self.tau} must be in [0, 1]")
        if self.self_label_among not in ("presented", "all"):
            raise ParameterError(f"self_label_among={self.self_label_among!r} is not 'presented' or 'all'")
        if self.graph_method not in ("exact", "approx", "auto"):
            raise ParameterError(f"graph_method={self.graph_method!r} is not exact, approx or auto")
        if self.smooth_iters < 0 or self.encode_batch_size < 1:
            raise ParameterError("smooth_iters must be >= 0 and encode_batch_size >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        p = _group_mean(p, q)
    if rule == "tau":
        if not 0.0 <= tau <= 1.0:
            raise ParameterError(f"tau={tau} must be in [0, 1]")
        use = p > tau
    elif rule == "compare":
        conf = weak_confidence(w) if weak_conf is None else _prob(weak_conf, "weak_conf")
        if conf.shape != p.shape:
            raise InputError(f"weak_conf has shape {conf.shape}, expected {p.shape}")
        if groups is not None:
            conf = _group_mean(conf, q)
        use = p > conf
    else:
        raise ParameterError(f"selection rule={rule!r} is not one of {', '.join(map(repr, RULES))}")
    return Selection(labels=np.where(use, s, w).astype(np.float32), use_self=use)


def _group_mean(x: np.ndarray, q: np.ndarray) -> np.ndarray:
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
