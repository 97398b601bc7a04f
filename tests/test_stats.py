"""Pool-aware statistics: re-splits of one question pool share questions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selective_w2sg.experiment.stats import bootstrap_p, contrast, corrected_resampled_t, holm, pool_bootstrap


def _null_pool(rng: np.random.Generator, *, q: int = 400, n_test: int = 120, resplits: int = 10,
               interaction: float = 0.3, shift: float = 0.02):
    """Two exchangeable students on one pool of `q` questions, `resplits` re-splits with `n_test`
    test questions each. Per question, one student is better than the other by a random amount
    with mean 0 over the population (`interaction`); per re-split, training moves each student's
    accuracy by a random shift (`shift`); per (re-split, question), a coin is tossed. The true
    (population) difference is 0."""
    base = rng.uniform(0.3, 0.95, q)
    e = rng.normal(0.0, interaction, q)
    pa, pb = np.clip(base + e / 2, 0, 1), np.clip(base - e / 2, 0, 1)
    vals, ids = [], []
    for _ in range(resplits):
        t = rng.choice(q, n_test, replace=False)
        ga, gb = rng.normal(0.0, shift, 2)
        a = rng.random(n_test) < np.clip(pa[t] + ga, 0, 1)
        b = rng.random(n_test) < np.clip(pb[t] + gb, 0, 1)
        vals.append(a.astype(np.float64) - b)
        ids.append(t)
    return vals, ids


def test_pool_bootstrap_covers_a_null_difference_at_its_nominal_rate():
    """The shipped CI (pool bootstrap) covers the true difference 0 in 93-97% of 200 simulated
    pools."""
    rng = np.random.default_rng(7)
    covered_pool = 0
    n = 200
    for _ in range(n):
        vals, ids = _null_pool(rng)
        r = contrast([v.clip(0) for v in vals], [(-v).clip(0) for v in vals], n_boot=400, seed=1,
                     pool={"ids": ids, "n_test": 120, "n_train": 280})
        covered_pool += r["pool"]["ci95"][0] <= 0 <= r["pool"]["ci95"][1]
    assert 0.93 <= covered_pool / n <= 0.97


def test_pool_bootstrap_moves_a_question_across_resplits_together():
    """One pool of 2 questions tested in every re-split: resampling questions can only give the
    per-question means (or their average), never the spread of independent re-splits."""
    vals = [np.array([1.0, 0.0])] * 5
    ids = [np.array(["a", "b"])] * 5
    b = pool_bootstrap(vals, ids, n_boot=500, seed=0, resample_resplits=False)
    assert set(np.round(b, 9)) <= {0.0, 0.5, 1.0}
    # identical re-splits leave no training residual: adding it adds nothing
    assert set(np.round(pool_bootstrap(vals, ids, n_boot=500, seed=0), 9)) <= {0.0, 0.5, 1.0}


def test_corrected_resampled_t_matches_its_formula():
    d = np.array([0.02, -0.01, 0.03, 0.00, 0.015, 0.025])
    r = corrected_resampled_t(d, n_test=300, n_train=700)
    se = math.sqrt(d.var(ddof=1) * (1 / 6 + 300 / 700))
    from scipy.stats import t

    assert r["mean"] == pytest.approx(d.mean())
    assert r["p"] == pytest.approx(2 * t.sf(d.mean() / se, 5))
    assert r["ci95"][1] - r["ci95"][0] == pytest.approx(2 * t.ppf(0.975, 5) * se)
    # wider than the naive t-test's CI: the overlap of re-splits is accounted for
    assert r["ci95"][1] - r["ci95"][0] > 2 * t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)


def test_bootstrap_p_and_holm():
    assert bootstrap_p(np.full(100, 0.3)) == pytest.approx(1 / 101)
    assert bootstrap_p(np.r_[np.full(50, -1.0), np.full(50, 1.0)]) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
