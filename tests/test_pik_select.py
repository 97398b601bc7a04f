"""P(IK) probe, its metrics, and the selection rules."""

from __future__ import annotations

import numpy as np
import pytest

from selective_w2sg.graph.errors import InputError, ParameterError
from selective_w2sg.config import PikConfig
from selective_w2sg.experiment.pik import C_GRID, PikProbe, auroc, reliability
from selective_w2sg.experiment.selection import select_labels


def test_auroc_matches_pairwise_definition(rng):
    y = rng.random(200) < 0.4
    s = rng.random(200).round(1)  # many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auroc(y, s) == pytest.approx(pairwise)
    assert auroc(y, y.astype(float)) == 1.0
    assert np.isnan(auroc(np.ones(5, bool), np.arange(5.0)))


def test_reliability_perfectly_calibrated_has_small_ece(rng):
    p = rng.random(20000)
    y = rng.random(20000) < p
    rel = reliability(y, p)
    assert rel["ece"] < 0.02
    assert sum(rel["bin_count"]) == 20000
    assert reliability(np.zeros(100), np.full(100, 0.9))["ece"] == pytest.approx(0.9)


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_pik_recovers_known_subset(kind, rng):
    n, d = 600, 20
    x = rng.standard_normal((n, d)).astype(np.float32)
    knows = x[:, 0] + 0.3 * rng.standard_normal(n) > 0  # "known" questions live along one direction
    probe = PikProbe(PikConfig(kind=kind, C=1.0)).fit(x[:400], knows[:400])
    metrics = probe.evaluate(x[400:], knows[400:])
    assert metrics["auroc"] > 0.85
    p = probe.predict(x[400:])
    assert p.shape == (200,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()


def test_pik_cross_validates_its_strength(rng):
    """logreg with C=None picks the L2 strength by grouped CV on the training data: a flat probe
    when the features carry no signal, a sharper one when they do."""
    n, d = 600, 200
    x = rng.standard_normal((n, d)).astype(np.float32)
    groups = np.repeat(np.arange(n // 2), 2)  # two examples per question
    noise = rng.random(n) < 0.45
    logreg = PikConfig(kind="logreg")
    flat = PikProbe(logreg).fit(x, noise, groups=groups)
    assert flat.chosen_C == min(C_GRID) and set(flat.cv_log_loss) == {f"C={c:g}" for c in C_GRID}
    assert flat.edge_chosen
    p = flat.predict(x)
    assert abs(p.mean() - noise.mean()) < 0.03 and p.std() < 0.05
    signal = x[:, 0] + 0.3 * rng.standard_normal(n) > 0
    sharp = PikProbe(logreg).fit(x, signal, groups=groups)
    assert sharp.chosen_C > min(C_GRID)
    assert sharp.to_dict()["chosen_C"] == sharp.chosen_C
    sharp.config = PikConfig(kind="logreg", C=0.5)  # a refit with a fixed C reports no stale cross-validation
    assert sharp.fit(x, signal).chosen_C == 0.5 and sharp.cv_log_loss == {}
    with pytest.raises(ParameterError, match="C=-1"):
        PikProbe(PikConfig(C=-1)).fit(x, signal)


def _pik_data(rng, n_q: int, d: int, hidden_signal: float):
    """Two examples per question; whether the strong model knows a question depends on its
    confidence and, with weight `hidden_signal`, on one hidden direction the confidence misses."""
    qz = rng.standard_normal(n_q)  # confidence log-odds per question
    h = rng.standard_normal((n_q, d))
    knows_q = rng.random(n_q) < 1 / (1 + np.exp(-(1.5 * qz + hidden_signal * h[:, 0])))
    rep = lambda a: np.repeat(a, 2, axis=0)  # noqa: E731
    x = rep(h) + 0.1 * rng.standard_normal((2 * n_q, d))
    conf = 1 / (1 + np.exp(-rep(qz)))  # the strong model's confidence: a monotone score of qz
    return x.astype(np.float32), conf.astype(np.float32), rep(knows_q), np.repeat(np.arange(n_q), 2)


@pytest.mark.parametrize("hidden_signal", [0.0, 2.0])
def test_anchored_pik_never_below_its_confidence(rng, hidden_signal):
    """The default probe takes the strong model's confidence unpenalised: with hidden states of
    pure noise it chooses confidence alone and scores what confidence scores; where the hidden
    states carry signal the confidence misses, it adds a correction and beats confidence."""
    x, conf, knows, groups = _pik_data(rng, 700, 128, hidden_signal)
    tr, te = slice(0, 800), slice(800, None)
    probe = PikProbe().fit(x[tr], knows[tr], groups=groups[tr], confidence=conf[tr])
    m = probe.evaluate(x[te], knows[te], conf[te], groups[te])
    assert m["n_questions"] == 300 and {"question_auroc", "confidence_question_auroc"} <= set(m)
    assert set(probe.cv_log_loss) == {"base_rate", "confidence", *(f"C={c:g}" for c in C_GRID)}
    if hidden_signal == 0:
        # confidence alone, or (when fold noise favours one, 1 seed in 20 here) a tiny correction
        assert probe.chosen == "confidence" or probe.chosen_C <= 1e-3
        assert m["question_auroc"] >= m["confidence_question_auroc"] - 0.005
    else:
        assert probe.chosen == "correction" and not probe.edge_chosen
        assert m["question_auroc"] > m["confidence_question_auroc"] + 0.05
    with pytest.raises(InputError, match="confidence"):
        probe.predict(x[te])


def test_anchored_pik_without_signal_is_the_base_rate(rng):
    x = rng.standard_normal((400, 50)).astype(np.float32)
    knows = rng.random(400) < 0.7
    probe = PikProbe().fit(x, knows, groups=np.repeat(np.arange(200), 2), confidence=rng.random(400))
    assert probe.chosen in ("base_rate", "confidence")
    assert probe.predict(x, rng.random(400)).std() < 0.05


def test_pik_bad_input(rng):
    x = rng.standard_normal((10, 3))
    with pytest.raises(InputError, match="all True"):
        PikProbe().fit(x, np.ones(10, bool))
    x[4, 1] = np.nan
    with pytest.raises(InputError, match="row 4"):
        PikProbe().fit(x, np.arange(10) % 2 == 0)
    with pytest.raises(ParameterError, match="'svm'"):
        PikProbe(PikConfig(kind="svm")).fit(rng.standard_normal((10, 3)), np.arange(10) % 2 == 0)


def test_select_tau_and_compare():
    self_l = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    weak = np.array([0.2, 0.9, 0.55, 0.5], np.float32)
    pik = np.array([0.9, 0.4, 0.6, 0.45], np.float32)
    s = select_labels(self_l, weak, pik, rule="tau", tau=0.5)
    np.testing.assert_array_equal(s.use_self, [True, False, True, False])
    np.testing.assert_allclose(s.labels, [1.0, 0.9, 1.0, 0.5])
    assert s.coverage == 0.5
    # compare: self where P(IK) > max(p, 1-p) of the weak label: 0.9>0.8, 0.4<0.9, 0.6>0.55, 0.45<0.5
    c = select_labels(self_l, weak, pik, rule="compare")
    np.testing.assert_array_equal(c.use_self, [True, False, True, False])
    c2 = select_labels(self_l, weak, pik, rule="compare", weak_conf=np.full(4, 0.95, np.float32))
    assert not c2.use_self.any()
    np.testing.assert_allclose(c2.labels, weak)


def test_select_bad_input():
    a = np.full(3, 0.5, np.float32)
    with pytest.raises(ParameterError, match="'magic'"):
        select_labels(a, a, a, rule="magic")
    with pytest.raises(ParameterError, match="tau=1.5"):
        select_labels(a, a, a, rule="tau", tau=1.5)
    with pytest.raises(InputError, match="pik row 1"):
        select_labels(a, a, np.array([0.1, 2.0, 0.3]))
    with pytest.raises(InputError, match="one shape"):
        select_labels(a, a[:2], a)
