"""Penalised logistic regression with a fixed offset and unpenalised terms: the one convex fit
behind the P(IK) probe and the anchored probe heads.

    logit_i = offset_i + fixed_i @ a + ((x_i - mean) / std) @ w
    minimise  sum_i CE(t_i, sigmoid(logit_i)) + ||w||^2 / (2 C)

`t` may be soft (any value in [0, 1]); `a` (an intercept, a confidence term ...) is never
penalised, so the penalty only pulls the hidden-state correction `w` towards "add nothing to the
offset and the fixed terms". C = None fits no `w` at all. Solved with L-BFGS in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.errors import InputError, ParameterError

def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 - p)) in float64, p clipped to [eps, 1 - eps] (so a certain p is a finite logit)."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(q) - np.log1p(-q)


# Inverse L2 strengths, half decades: what cross-validation chooses among (P(IK)'s correction,
# the anchored heads' correction). 1e-4 leaves a correction of ~nothing; 10 barely penalises.
C_GRID = tuple(float(f"{10.0 ** (e / 2):.3g}") for e in range(-8, 3))


@dataclass
class PenalisedLogistic:
    """A fitted model: `decision(x, fixed, offset)` is the logit, `predict(...)` P(y = 1)."""

    C: float | None
    mean: np.ndarray
    std: np.ndarray
    a: np.ndarray  # (n_fixed,) unpenalised coefficients
    w: np.ndarray  # (d,) penalised coefficients (empty when C is None)

    def decision(self, x: np.ndarray, fixed: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        out = np.asarray(fixed, dtype=np.float64) @ self.a
        if self.C is not None:
            out = out + ((np.asarray(x, dtype=np.float64) - self.mean) / self.std) @ self.w
        return out if offset is None else out + np.asarray(offset, dtype=np.float64)

    def predict(self, x: np.ndarray, fixed: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x, fixed, offset)))


def fit_penalised_logistic(x: np.ndarray, t: np.ndarray, *, C: float | None, fixed: np.ndarray | None = None,
                           offset: np.ndarray | None = None, max_iter: int = 2000) -> PenalisedLogistic:
    """x: (n, d) features (standardised on these rows); t: (n,) targets in [0, 1]; fixed: (n, f)
    unpenalised columns (default: an intercept column); offset: (n,) fixed log-odds."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    n = len(x)
    if x.ndim != 2 or t.shape != (n,):
        raise InputError(f"features {x.shape} and targets {t.shape} do not match")
    if not np.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise InputError("targets must be probabilities in [0, 1]")
    if C is not None and not C > 0:
        raise ParameterError(f"C={C} must be > 0")
    f = np.ones((n, 1)) if fixed is None else np.asarray(fixed, dtype=np.float64)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64)
    mean = x.mean(0) if n else np.zeros(x.shape[1])
    sd = x.std(0) if n else np.ones(x.shape[1])
    std = np.where(sd > 1e-12, sd, 1.0)
    xs = (x - mean) / std if C is not None else np.zeros((n, 0))
    nf = f.shape[1]
    lam = 0.0 if C is None else 1.0 / C

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, w = theta[:nf], theta[nf:]
        logit = off + f @ a + xs @ w
        loss = np.logaddexp(0.0, logit) - t * logit  # CE(t, sigmoid(logit)) up to a constant in t
        r = 0.5 * (1.0 + np.tanh(0.5 * logit)) - t  # sigmoid(logit) - t, without overflow
        return float(loss.sum() + 0.5 * lam * w @ w), np.concatenate([f.T @ r, xs.T @ r + lam * w])

    from scipy.optimize import minimize

    theta0 = np.zeros(nf + xs.shape[1])
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return PenalisedLogistic(C, mean, std, res.x[:nf], res.x[nf:])
