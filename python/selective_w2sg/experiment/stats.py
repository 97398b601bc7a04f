"""Paired statistics over re-splits of one question pool.

Each re-split (seed) has its own test questions. A contrast "A - B" is paired twice over: both
models are scored on the same test questions of the same re-split. Per question, accuracy is the
mean over its examples (a question's examples stay together). The point estimate is the mean
over re-splits of the mean over their test questions; its 95% CI comes from a two-level bootstrap
(re-splits resampled, then each chosen re-split's test questions), and its p-value from a paired
t-test over the per-re-split differences, Holm-corrected across the contrasts of a table.

Re-splits of one pool share questions, so they are not independent draws from the task: the
two-level bootstrap and the t-test over re-splits describe the variability of the protocol on
this pool (splits and training) only. Claims rest on the pool-aware statistics: the pool
bootstrap (`pool_bootstrap`: the pool's questions resampled, each question's results across
re-splits moving together, plus each re-split's own training residual), checked by simulation
to cover a null difference at its nominal rate, and beside it the corrected resampled t-test
of Nadeau and Bengio (2003), which is conservative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..graph.errors import InputError


def question_accuracy(probs: np.ndarray, labels: np.ndarray, question: np.ndarray) -> np.ndarray:
    """Per-question accuracy float64 (Q,): probs, labels, question (n,), with `question` the
    example's question index in 0..Q-1."""
    right = ((np.asarray(probs) > 0.5) == (np.asarray(labels) == 1)).astype(np.float64)
    q = np.asarray(question)
    return np.bincount(q, weights=right) / np.bincount(q)


def simplest_within_one_se(acc: np.ndarray, order: Sequence[int]) -> tuple[int, np.ndarray]:
    """The one-standard-error rule over paired per-question scores. acc: (candidates, questions)
    per-question accuracy of each candidate on the same questions. Returns the first candidate in
    `order` (simplest first) whose mean is within one standard error (of its paired per-question
    difference from the best) of the best, and that standard error per candidate. Choosing the
    simplest near-best candidate keeps noise from picking among settings that score alike."""
    mean = acc.mean(1)
    best = int(np.argmax(mean))
    n = acc.shape[1]
    se = np.array([(acc[best] - acc[i]).std(ddof=1) / np.sqrt(n) if n > 1 else 0.0 for i in range(len(acc))])
    for i in order:
        if mean[i] >= mean[best] - se[i] - 1e-12:
            return i, se
    return best, se


def two_level_bootstrap(per_seed: Sequence[np.ndarray], *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates (n_boot,) of "mean over re-splits of the mean over their questions":
    re-splits drawn with replacement, then each drawn re-split's question values with
    replacement. `per_seed`: one float array of per-question values per re-split."""
    if not per_seed or any(len(v) == 0 for v in per_seed):
        raise InputError("the bootstrap needs at least one re-split, each with at least one question")
    rng = np.random.default_rng(seed)
    s = len(per_seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, s, size=s)
        out[b] = np.mean([per_seed[i][rng.integers(0, len(per_seed[i]), size=len(per_seed[i]))].mean()
                          for i in picks])
    return out


def paired_t_pvalue(diffs: Sequence[float]) -> float:
    """Two-sided p-value of a one-sample t-test of the per-re-split differences against 0
    (NaN with fewer than two re-splits; 0 or 1 when every difference is the same)."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    sd = d.std(ddof=1)
    if sd == 0:
        return 1.0 if d.mean() == 0 else 0.0
    from scipy.stats import t as student_t

    tstat = d.mean() / (sd / math.sqrt(len(d)))
    return float(2 * student_t.sf(abs(tstat), df=len(d) - 1))


def corrected_resampled_t(diffs: Sequence[float], n_test: float, n_train: float) -> dict[str, Any]:
    """The corrected resampled t-test (Nadeau and Bengio 2003) for J re-splits of one pool:
    the per-re-split differences' variance is inflated from 1/J to (1/J + n_test/n_train), the
    share of the pool a test set takes over the share it trains on, because re-splits reuse
    each other's questions. Returns the mean, a 95% CI (t with J - 1 df) and the two-sided p."""
    d = np.asarray(diffs, dtype=np.float64)
    j = len(d)
    if j < 2 or not n_test > 0 or not n_train > 0:
        return {"mean": float(d.mean()) if j else float("nan"), "ci95": [float("nan")] * 2, "p": float("nan")}
    from scipy.stats import t as student_t

    var = d.var(ddof=1) * (1.0 / j + n_test / n_train)
    m = float(d.mean())
    if var == 0:
        return {"mean": m, "ci95": [m, m], "p": 1.0 if m == 0 else 0.0}
    se = math.sqrt(var)
    q = float(student_t.ppf(0.975, df=j - 1))
    return {"mean": m, "ci95": [m - q * se, m + q * se], "p": float(2 * student_t.sf(abs(m / se), df=j - 1))}


def pool_bootstrap(per_seed: Sequence[np.ndarray], per_seed_ids: Sequence[np.ndarray], *, n_boot: int = 2000,
                   seed: int = 0, resample_resplits: bool = True) -> np.ndarray:
    """Bootstrap replicates (n_boot,) of "mean over re-splits of the mean over their test
    questions", resampling the *pool's questions*: each draw weights every question of the pool
    by how often it was drawn, and a question's values in every re-split it was tested in move
    together (re-splits of one pool share questions, so resampling re-splits would treat shared
    questions as independent). `per_seed`: per-question values per re-split; `per_seed_ids`: the
    same questions' ids (any hashable, comparable across re-splits)."""
    if not per_seed or len(per_seed) != len(per_seed_ids):
        raise InputError("the pool bootstrap needs one id array per re-split")
    ids = np.unique(np.concatenate([np.asarray(i) for i in per_seed_ids]))
    j, q = len(per_seed), len(ids)
    val = np.zeros((j, q))
    mask = np.zeros((j, q))
    for r, (v, i) in enumerate(zip(per_seed, per_seed_ids)):
        col = np.searchsorted(ids, np.asarray(i))
        if len(v) != len(col):
            raise InputError(f"re-split {r}: {len(v)} values but {len(col)} question ids")
        val[r, col] = v
        mask[r, col] = 1.0
    # A re-split's residual: its mean minus what its questions' means over all re-splits predict,
    # i.e. what its training run (weak model, folds, seeds) added beyond which questions it drew.
    q_mean = (val * mask).sum(0) / np.maximum(mask.sum(0), 1)
    resid = (val * mask).sum(1) / mask.sum(1) - (mask * q_mean).sum(1) / mask.sum(1)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = 256
    for s0 in range(0, n_boot, chunk):
        b = min(chunk, n_boot - s0)
        w = rng.multinomial(q, np.full(q, 1.0 / q), size=b).astype(np.float64)  # (b, q) draw counts
        num, den = w @ (val * mask).T, w @ mask.T  # (b, j)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        out[s0 : s0 + b] = np.nanmean(per, axis=1)
        if resample_resplits:  # each re-split's own training randomness, resampled as residuals
            out[s0 : s0 + b] += resid[rng.integers(0, j, size=(b, j))].mean(axis=1)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (NaN stays NaN, not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(p))
    adj = np.full(len(p), np.nan)
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def contrast(a: Sequence[np.ndarray], b: Sequence[np.ndarray], *, n_boot: int = 2000, seed: int = 0,
             pool: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A - B from per-seed per-question accuracies (paired by seed and question): mean, the
    protocol-variability 95% CI (two-level bootstrap) and paired t-test p (uncorrected); with
    `pool` ({"ids": per-seed question ids, "n_test", "n_train"}: questions per test set and per
    the rest of the pool) also the pool-aware statistics, the only basis for a claim:
    "pool": the pool bootstrap's 95% CI and two-sided p; "corrected_t": Nadeau-Bengio."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise InputError("a contrast needs both models scored on the same questions of the same re-splits")
    d = [np.asarray(x, np.float64) - np.asarray(y, np.float64) for x, y in zip(a, b)]
    per_seed = [float(v.mean()) for v in d]
    boots = two_level_bootstrap(d, n_boot=n_boot, seed=seed)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    out: dict[str, Any] = {"mean": float(np.mean(per_seed)), "ci95": [float(lo), float(hi)],
                           "p": paired_t_pvalue(per_seed), "per_resplit": per_seed, "n_resplits": len(d)}
    if pool is not None:
        pb = pool_bootstrap(d, pool["ids"], n_boot=n_boot, seed=seed)
        plo, phi = np.percentile(pb, [2.5, 97.5])
        out["pool"] = {"ci95": [float(plo), float(phi)], "p": bootstrap_p(pb), "method": "pool bootstrap"}
        out["corrected_t"] = corrected_resampled_t(per_seed, pool["n_test"], pool["n_train"])
    return out


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the statistic is 0": twice the smaller share of replicates
    on either side of 0 (ties split), at least 1 / (n + 1)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return float("nan")
    below = (np.sum(r < 0) + 0.5 * np.sum(r == 0)) / len(r)
    return float(min(1.0, max(2 * min(below, 1 - below), 1.0 / (len(r) + 1))))


def pgr_ratio_of_means(student: Sequence[np.ndarray], weak: Sequence[np.ndarray], ceiling: Sequence[np.ndarray],
                       *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """PGR = (mean student - mean weak) / (mean ceiling - mean weak), means over re-splits of
    per-question accuracy; 95% CI from the same two-level bootstrap applied to the three jointly
    (NaN where a replicate's gap is not positive, and the CI is then over the rest)."""
    rng = np.random.default_rng(seed)
    s = len(student)

    def means(picks: np.ndarray, rows: list[np.ndarray]) -> tuple[float, float, float]:
        st = np.mean([student[i][r].mean() for i, r in zip(picks, rows)])
        wk = np.mean([weak[i][r].mean() for i, r in zip(picks, rows)])
        ce = np.mean([ceiling[i][r].mean() for i, r in zip(picks, rows)])
        return st, wk, ce

    def ratio(st: float, wk: float, ce: float) -> float:
        return (st - wk) / (ce - wk) if ce - wk > 0 else float("nan")

    full = [np.arange(len(student[i])) for i in range(s)]
    point = ratio(*means(np.arange(s), full))
    boots = []
    for _ in range(n_boot):
        picks = rng.integers(0, s, size=s)
        rows = [rng.integers(0, len(student[i]), size=len(student[i])) for i in picks]
        boots.append(ratio(*means(picks, rows)))
    b = np.asarray(boots)
    b = b[np.isfinite(b)]
    ci = [float(x) for x in np.percentile(b, [2.5, 97.5])] if len(b) else [float("nan")] * 2
    return {"pgr": point, "ci95": ci, "defined_share": float(len(b) / n_boot)}


CONTRASTS: tuple[tuple[str, str], ...] = (
    ("selective", "naive"), ("selective", "aux_conf"), ("selective", "self_only"),
    ("selective", "random_select"), ("smooth_only", "naive"), ("selective", "zero_shot"),
)


def contrast_table(acc: Mapping[str, Sequence[np.ndarray]], *, pairs: Sequence[tuple[str, str]] = CONTRASTS,
                   n_boot: int = 2000, seed: int = 0, pool: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every contrast of `pairs` whose two models are in `acc` (model -> per-seed per-question
    accuracy), with Holm-adjusted p-values across them (pool-aware p where `pool` is given;
    a README tally across tasks and models applies `holm` to its whole family instead)."""
    rows = []
    for a, b in pairs:
        if a in acc and b in acc:
            rows.append({"a": a, "b": b, **contrast(acc[a], acc[b], n_boot=n_boot, seed=seed, pool=pool)})
    for r, p in zip(rows, holm([r["p"] for r in rows])):
        r["p_holm"] = p
    if pool is not None:
        for r, p in zip(rows, holm([r["pool"]["p"] for r in rows])):
            r["pool"]["p_holm_table"] = p
    return rows
