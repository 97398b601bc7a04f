"""The evidence machinery: paired statistics (checked against hand-computed values), anchored
probe heads, question-level selection, the baseline students, oracle marking."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from selective_w2sg.experiment.stages import students_for
from selective_w2sg.config import RunConfig
from selective_w2sg.experiment.pipeline import prepare_seed, run_seed, run_stages
from selective_w2sg.experiment.selection import select_labels
from selective_w2sg.experiment.stats import contrast, holm, paired_t_pvalue, question_accuracy, two_level_bootstrap
from selective_w2sg.config import TrainConfig

torch.set_num_threads(1)
SMALL = dict(n_weak=60, n_w2s=80, n_test=40)


# ------------------------------------------------------------------------------------------ statistics


def test_holm_matches_hand_computation() -> None:
    # sorted: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> monotone 0.09; 0.5*1 = 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])  # capped by monotonicity, not above 1
    adj = holm([0.9, float("nan"), 0.01])
    assert adj[0] == pytest.approx(0.9) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)


def test_paired_t_matches_hand_computation() -> None:
    # diffs 1, 2, 3: t = 2 / (1 / sqrt 3) = sqrt 12, df = 2; for df = 2, P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2
    t = math.sqrt(12)
    expected = 1 - t / math.sqrt(t * t + 2)
    assert paired_t_pvalue([1.0, 2.0, 3.0]) == pytest.approx(expected, rel=1e-9)
    assert math.isnan(paired_t_pvalue([0.4])) and paired_t_pvalue([0.2, 0.2]) == 0.0


def test_two_level_bootstrap_distribution() -> None:
    # Two re-splits whose questions are all 0 and all 1: a replicate is the mean of two re-splits
    # drawn with replacement, so it is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    boots = two_level_bootstrap([np.zeros(5), np.ones(7)], n_boot=4000, seed=3)
    values, counts = np.unique(boots, return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    # one re-split: only the question level varies; constant values give a zero-width interval
    assert np.all(two_level_bootstrap([np.full(4, 0.25)], n_boot=50) == 0.25)


def test_contrast_is_paired_by_question() -> None:
    rng = np.random.default_rng(0)
    base = [rng.random(30) for _ in range(6)]
    better = [b + 0.1 for b in base]  # the same questions, shifted: a tight positive difference
    c = contrast(better, base, n_boot=500)
    assert c["mean"] == pytest.approx(0.1) and c["ci95"][0] == pytest.approx(0.1) and c["ci95"][1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same questions"):
        contrast(better, base[:5])


def test_question_accuracy() -> None:
    acc = question_accuracy(np.array([0.9, 0.2, 0.7, 0.6]), np.array([1, 0, 0, 1]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(acc, [1.0, 0.5])


# ------------------------------------------------------------------------------------------ selection


def test_selection_is_one_decision_per_question() -> None:
    # question a: P(IK) 0.9 / 0.3 (mean 0.6) vs confidence 0.5 -> self for both examples
    # question b: P(IK) 0.7 / 0.1 (mean 0.4) vs confidence 0.5 -> weak for both
    s = select_labels(np.array([1, 0, 1, 0.0]), np.array([0.2, 0.8, 0.6, 0.4]), np.array([0.9, 0.3, 0.7, 0.1]),
                      rule="compare", weak_conf=np.full(4, 0.5), groups=np.array(["a", "a", "b", "b"]))
    assert s.use_self.tolist() == [True, True, False, False]
    np.testing.assert_allclose(s.labels, [1, 0, 0.6, 0.4])


@pytest.fixture(scope="module")
def evidence_run(tmp_path_factory, knower):
    """Three re-splits of one pool with every student; the strong model knows the easy subset."""
    out = tmp_path_factory.mktemp("evidence") / "run"
    cfg = RunConfig.create(out=str(out), strong=knower, method="all",
                           resplits=3, train=TrainConfig(epochs=6, device="cpu"), **SMALL)
    from selective_w2sg.experiment.pipeline import run_pipeline

    summary = run_pipeline(cfg)
    return cfg, out, summary


def test_every_selection_student_is_consistent_within_questions(evidence_run) -> None:
    from selective_w2sg.experiment.stages import STUDENTS
    from selective_w2sg.experiment.stages.students import decisions

    cfg, _, _ = evidence_run
    ctx = prepare_seed(cfg, 0)
    stages = run_stages(ctx, students_for(cfg))
    assert all(d.reused for d in stages.values())  # the fixture ran them: nothing recomputed
    checked = 0
    for name, st in STUDENTS.items():
        if st.decision is None or name not in students_for(cfg):  # transfer_pik: mixtures only
            continue
        for split in ("w2s_train", "w2s_val"):
            use = decisions(stages[st.decision.name], split).use_self
            by_q: dict[str, set[bool]] = {}
            for e, u in zip(ctx.splits.examples[split], use):
                by_q.setdefault(e.question_id, set()).add(bool(u))
            assert all(len(v) == 1 for v in by_q.values()), name
            checked += 1
    assert checked >= 12
    # random_select takes exactly as many questions as selective
    sel = decisions(stages["decide-selective"], "w2s_train").use_self
    rnd = decisions(stages["decide-random_select"], "w2s_train").use_self
    assert sel.sum() == rnd.sum()


def test_report_has_baselines_contrasts_and_marks_the_oracle(evidence_run) -> None:
    _, out, summary = evidence_run
    for name in ("weak", "zero_shot", "ceiling", "naive", "self_only", "random_select", "constant_pik",
                 "confidence_pik", "oracle_pik", "selective"):
        assert name in summary["models"], name
    assert summary["oracle"] == ["oracle_pik"]
    pairs = {(c["a"], c["b"]) for c in summary["contrasts"]}
    assert {("selective", "naive"), ("selective", "self_only"), ("selective", "random_select")} <= pairs
    for c in summary["contrasts"]:
        assert c["n_resplits"] == 3 and c["ci95"][0] <= c["mean"] <= c["ci95"][1] and 0 <= c["p_holm"] <= 1
        assert c["p_holm"] >= c["p"]
    # the question-level accuracy of zero_shot is the strong model's test self-label accuracy
    res = json.loads((out / "results.json").read_text())
    z = np.mean([s["pik_test"]["base_rate"] for s in res["seeds"]])
    assert summary["question_accuracy"]["zero_shot"]["mean"] == pytest.approx(z)
    assert "confidence_test_auroc" in summary["selective"]


def test_anchored_heads_start_at_the_zero_shot_answer(evidence_run) -> None:
    """An anchored head with no correction (C None) predicts exactly the zero-shot probability
    (up to the clip); students fit with the C that tune chose."""
    from selective_w2sg.experiment.stages.encode import anchor_for, zero_shot_prob
    from selective_w2sg.experiment.stages.encode import load_encoded
    from selective_w2sg.experiment.stages.fitting import Budget, run_student
    from selective_w2sg.experiment.linear import C_GRID

    cfg, _, _ = evidence_run
    ctx = prepare_seed(cfg, 1)
    stages = run_stages(ctx, ("naive",))
    n_tr, n_va = (len(ctx.splits.examples[s]) for s in ("w2s_train", "w2s_val"))
    d = run_student(ctx, "anchor-only", np.full(n_tr, 0.5, np.float32), np.full(n_va, 0.5, np.float32),
                    anchor=anchor_for(ctx, stages["encode"]), budget=Budget(None))
    z = zero_shot_prob(load_encoded(stages["encode"]), ctx.splits.examples["test"])
    np.testing.assert_allclose(d.npy("preds_test"), np.clip(z, 1e-6, 1 - 1e-6), atol=1e-5)
    tune = stages["tune"].json("tune")
    assert tune["C"] in C_GRID and [c["C"] for c in tune["candidates"]] == list(C_GRID) * 2
    assert [c["anchored"] for c in tune["candidates"]] == [True] * len(C_GRID) + [False] * len(C_GRID)
    # every student fits with the chosen head, whatever its labels
    naive = json.loads((stages["naive"].path / "config.json").read_text())["config"]
    assert (naive["budget"]["C"], naive["budget"]["anchored"]) == (tune["C"], tune["anchored"])


def test_plain_heads_flag_keeps_early_stopping(tmp_path) -> None:
    cfg = RunConfig.create(out=str(tmp_path), method="w2s", train=TrainConfig(epochs=3, device="cpu", head="plain"),
                           **SMALL)
    stages = run_stages(prepare_seed(cfg, 0), students_for(cfg))
    assert stages["tune"].json("tune")["C"] is None
    naive_cfg = json.loads((stages["naive"].path / "config.json").read_text())["config"]
    assert "anchor" not in naive_cfg and "early_stop" not in naive_cfg


def test_resplits_share_one_pool_and_one_encode_pass(tmp_path) -> None:
    cfg = RunConfig.create(out=str(tmp_path), resplits=2, method="selective", train=TrainConfig(epochs=2, device="cpu"),
                           **SMALL)
    assert cfg.seeds == (0, 1) and cfg.data.pool_seed == 0
    r0, r1 = (run_seed(cfg, s) for s in cfg.seeds)
    assert r0["stage_dirs"]["encode"] == r1["stage_dirs"]["encode"]
    assert r0["stage_dirs"]["weak"] != r1["stage_dirs"]["weak"]


def test_pik_components_are_reported_per_question_with_their_baselines(evidence_run) -> None:
    """The knower knows the easy synthetic questions, a property of their words that its hidden
    states carry and its zero-shot confidence only partly shows: the trained P(IK) ranks questions
    at least as well as confidence alone (question level, mean over re-splits); across
    difficulties (trained on the weak model's easier questions, scored on its harder ones) the
    same AUROCs are reported with the confidence baseline on the same questions."""
    _, out, summary = evidence_run
    x = summary["selective"]
    pik, conf = x["pik_test_question_auroc"][0], x["confidence_test_question_auroc"][0]
    assert 0.5 < conf <= 1 and pik >= conf - 0.005
    res = json.loads((out / "results.json").read_text())
    for seed in res["seeds"]:
        d = seed["selective"]["pik_difficulty"]
        assert d["n_easy_train"] > 0 and d["n_hard_test"] > 0
        for part in ("easy_to_hard", "all_to_hard"):
            assert "skipped" in d[part] or 0 <= d[part]["question_auroc"] <= 1
        probe = seed["selective"]["pik"]["probe"]
        assert probe["chosen"] in ("base_rate", "confidence", "correction")
        held = seed["selective"]["pik"]["heldout"]
        assert {"question_auroc", "confidence_question_auroc"} <= set(held)
