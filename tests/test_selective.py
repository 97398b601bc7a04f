"""The selective method end to end on tiny models: a strong model that "knows" a known subset
of the synthetic task, P(IK), the graph smoothing, selection, and the data-flow guarantees."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import selective_w2sg as sw
from selective_w2sg.experiment.stages import students_for
from selective_w2sg.experiment.stages import base as stage_base
from selective_w2sg.experiment.stages import fitting as stages_mod
from selective_w2sg.experiment.pik import auroc
from selective_w2sg.config import RunConfig
from selective_w2sg.experiment.cache import array_fingerprint
from selective_w2sg.experiment.pipeline import prepare_seed, run_seed, run_stages, run_targets
from selective_w2sg.experiment.stages import STUDENTS
from selective_w2sg.config import SelectiveConfig
from selective_w2sg.experiment.stages.encode import load_encoded
from selective_w2sg.experiment.stages.students import decisions
from selective_w2sg.experiment.stages.fitting import center_by_question
from selective_w2sg.experiment.tasks import format_example
from selective_w2sg.config import TrainConfig

from conftest import count_rows

torch.set_num_threads(1)

SMALL = dict(n_weak=120, n_w2s=200, n_test=80)


def _cfg(tmp_path: Path, **kw) -> RunConfig:
    train = kw.pop("train", TrainConfig(epochs=8, device="cpu"))
    return RunConfig.create(out=str(tmp_path / "run"), train=train, **{**SMALL, **kw})


def _easy(ctx, split: str) -> np.ndarray:
    meta = {q.question_id: q.meta["easy"] for q in ctx.splits.questions[split]}
    return np.array([meta[e.question_id] for e in ctx.splits.examples[split]])


def test_pik_recovers_the_known_subset(tmp_path, knower):
    cfg = _cfg(tmp_path, strong=knower, method="selective")
    ctx = prepare_seed(cfg, 0)
    stages = run_stages(ctx, students_for(cfg))
    enc = load_encoded(stages["encode"])
    p_ik = stages["pik"].npy("pik_w2s_train")
    easy = _easy(ctx, "w2s_train")
    self_l = enc.self_labels(ctx.splits.examples["w2s_train"])  # its pick of the presented pair
    np.testing.assert_array_equal(stages["pik"].npy("self_w2s_train"), self_l)
    knows = self_l == ctx.splits.labels("w2s_train")
    assert knows[easy].mean() > 0.95, "the knower should answer the easy subset"
    # Choosing within a pair, a hard question is answered right by luck about half the time, and
    # no probe can foresee luck: an oracle that knows the easy subset scores auroc(knows, easy).
    oracle = auroc(knows, easy)
    assert auroc(knows, p_ik) > 0.85 * oracle, (auroc(knows, p_ik), oracle)
    assert auroc(easy, p_ik) > 0.75  # P(IK) singles out the known subset (chance: 0.5)
    metrics = stages["pik"].json("metrics")
    assert metrics["heldout"]["auroc"] > 0.7 and 0 <= metrics["heldout"]["ece"] <= 1
    # Where the selection takes self-labels, they are better than the weak labels they replace.
    use = run_targets(ctx, ["decide-pik_only"], done=stages)["decide-pik_only"].npy("use_self_w2s_train")
    weak_right = (stages["weak"].npy("preds_w2s_train") > 0.5) == (ctx.splits.labels("w2s_train") == 1)
    assert 0 < use.mean() < 1
    assert knows[use].mean() > weak_right[use].mean(), (knows[use].mean(), weak_right[use].mean())


def test_selection_labels_follow_the_rule(tmp_path, knower):
    """Per question: self-labels where mean P(IK) beats the rule's threshold (tau, or the mean
    calibrated confidence of the fallback label), the fallback label elsewhere."""
    for rule, tau in (("tau", 0.6), ("compare", 0.5)):
        cfg = _cfg(tmp_path, strong=knower, method="all", selective=SelectiveConfig(rule=rule, tau=tau))
        ctx = prepare_seed(cfg, 0)
        stages = run_targets(ctx, ["select", *students_for(cfg)])
        sel = stages["select"]
        qids = np.array([e.question_id for e in ctx.splits.examples["w2s_train"]])
        _, q = np.unique(qids, return_inverse=True)
        qmean = lambda x: (np.bincount(q, weights=x) / np.bincount(q))[q]  # noqa: E731
        self_l = sel.npy("self_w2s_train")
        p_ik = qmean(sel.npy("pik_w2s_train").astype(np.float64))
        for name, fallback, kind in (("selective", stages["smooth"].npy("smoothed_w2s_train"), "smoothed"),
                                     ("pik_only", stages["weak"].npy("preds_w2s_train"), "raw")):
            threshold = tau if rule == "tau" else qmean(sel.npy(f"cal_{kind}_w2s_train").astype(np.float64))
            use = p_ik > threshold
            chosen = decisions(stages[f"decide-{name}"], "w2s_train")
            np.testing.assert_array_equal(chosen.use_self, use)
            np.testing.assert_allclose(chosen.labels, np.where(use, self_l, fallback))
            cfg_json = json.loads((stages[name].path / "config.json").read_text())
            assert cfg_json["inputs"]["train"][3] == array_fingerprint(chosen.labels)  # the student trained on them
        np.testing.assert_allclose(STUDENTS["smooth_only"].labels(ctx, stages)[0], stages["smooth"].npy("smoothed_w2s_train"))


def test_decisions_are_made_once_and_read_by_every_reader(tmp_path):
    """Each selection student's decisions are the outputs of its stage `decide-<name>`: the
    student trained on exactly its labels (w2s_train and w2s_val), its decisions are one per
    question, random_select takes as many questions as selective's decisions, and the analysis
    reports the coverage and label accuracy of those same files."""
    from selective_w2sg.experiment.analysis import analyse
    from selective_w2sg.experiment.stages import STAGES

    cfg = _cfg(tmp_path, method="all")
    ctx = prepare_seed(cfg, 0)
    stages = run_stages(ctx, students_for(cfg))
    selection = [n for n in students_for(cfg) if STUDENTS[n].decision is not None]
    assert len(selection) >= 6 and "selective" in selection and "random_select" in selection
    report = analyse(ctx, stages)
    y = ctx.splits.labels("w2s_train") == 1
    for name in selection:
        decide = STUDENTS[name].decision.name
        assert decide == f"decide-{name}" and STAGES[name].needs == (decide, "encode", "tune")
        d = stages[decide]
        inputs = json.loads((stages[name].path / "config.json").read_text())["inputs"]
        for i, split in ((0, "w2s_train"), (1, "w2s_val")):
            chosen = decisions(d, split)
            assert chosen.use_self.dtype == bool and chosen.labels.dtype == np.float32
            assert inputs[("train", "val")[i]][3] == array_fingerprint(chosen.labels), (name, split)
            by_q: dict[str, set[bool]] = {}
            for e, u in zip(ctx.splits.examples[split], chosen.use_self):
                by_q.setdefault(e.question_id, set()).add(bool(u))
            assert all(len(v) == 1 for v in by_q.values()), (name, split)
            assert d.json("decision")[f"coverage_{split}"] == chosen.coverage
        train = decisions(d, "w2s_train")
        assert report["coverage_w2s_train"][name] == train.coverage
        assert report["label_accuracy_w2s_train"][name] == float(np.mean((train.labels > 0.5) == y))
    for split in ("w2s_train", "w2s_val"):
        assert (decisions(stages["decide-random_select"], split).use_self.sum()
                == decisions(stages["decide-selective"], split).use_self.sum())


def test_smoothing_uses_the_w2s_embedding_graph(tmp_path):
    cfg = _cfg(tmp_path, method="selective",
               selective=SelectiveConfig(k=7, alpha=0.8, graph_embedding="last", smoothed_output="soft"))
    ctx = prepare_seed(cfg, 0)
    stages = run_stages(ctx, ("selective",))
    enc = load_encoded(stages["encode"])
    w2s = ctx.splits.examples["w2s_train"] + ctx.splits.examples["w2s_val"]
    emb = center_by_question(enc.embedding[enc.rows(w2s)], [e.question_id for e in w2s])
    weak = np.concatenate([stages["weak"].npy("preds_w2s_train"), stages["weak"].npy("preds_w2s_val")])
    graph = sw.knn_graph(emb, 7, method="exact")
    # centred, a question's two examples point in opposite directions: never each other's neighbour
    pair = {e.question_id: [] for e in w2s}
    for i, e in enumerate(w2s):
        pair[e.question_id].append(i)
    partner = np.empty(len(w2s), dtype=np.int64)
    for a, b in pair.values():
        partner[a], partner[b] = b, a
    assert not (graph.indices == partner[:, None]).any()
    expected = sw.smooth_labels(graph, weak, alpha=0.8)
    n = len(ctx.splits.examples["w2s_train"])
    np.testing.assert_allclose(stages["smooth"].npy("smoothed_w2s_train"), expected[:n], atol=1e-6)
    np.testing.assert_allclose(stages["smooth"].npy("smoothed_w2s_val"), expected[n:], atol=1e-6)
    info = stages["smooth"].json("graph")
    assert info["k"] == 7 and info["n"] == info["on_graph"] == len(w2s) and info["converged"]
    # rescaled (the default output): the same hard labels, the weak labels' mean confidence back
    ctx = prepare_seed(_cfg(tmp_path, method="selective",
                            selective=SelectiveConfig(k=7, alpha=0.8, graph_embedding="last")), 0)
    rescaled = np.concatenate([run_stages(ctx, ("selective",))["smooth"].npy(f"smoothed_{s}")
                               for s in ("w2s_train", "w2s_val")])
    assert ((rescaled > 0.5) == (expected > 0.5)).all()
    assert np.mean(np.abs(rescaled - 0.5)) == pytest.approx(np.mean(np.abs(weak - 0.5)), abs=1e-4)
    assert np.mean(np.abs(expected - 0.5)) < np.mean(np.abs(weak - 0.5)) - 0.01  # spreading did flatten them


def test_center_by_question():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 5.0], [7.0, 5.0]], np.float32)
    c = center_by_question(x, ["a", "a", "b", "b"])
    np.testing.assert_allclose(c, [[-1, -2], [1, 2], [-1, 0], [1, 0]])


def test_truncation_keeps_the_answer():
    from selective_w2sg.experiment.models import load_backbone, tokenize

    bb = load_backbone("tiny-random-bert")
    long_q = " ".join(["f1"] * 100)
    ids = tokenize(bb, [format_example(long_q, "w1 w2"), format_example(long_q, "w3 w4")], max_length=16)
    assert len(ids[0]) == 16 and ids[0] != ids[1]


def test_strong_model_sees_each_text_once_in_the_whole_run(tmp_path, monkeypatch):
    """--method all in probe mode: the encode pass is the only forward pass of the strong model
    (ceiling and students reuse its features), one row per distinct text."""
    real = stages_mod.load_backbone

    def counting(name, **kw):
        bb = real(name, **kw)
        if name == "tiny-random-llama":
            counts.append(count_rows(bb))
        return bb

    counts: list[dict[str, int]] = []

    monkeypatch.setattr(stages_mod, "load_backbone", counting)  # fresh weights (full / lora training)
    monkeypatch.setattr(stage_base, "load_backbone", counting)  # a context's frozen backbones
    cfg = _cfg(tmp_path, method="all")
    ctx = prepare_seed(cfg, 0)
    run_stages(ctx, students_for(cfg))
    qs = [q for s in ctx.splits.questions.values() for q in s]
    assert sum(c["rows"] for c in counts) == len({format_example(q.question, o) for q in qs for o in q.options})
    # a second run reuses everything: no forward pass at all
    counts.clear()
    run_stages(prepare_seed(cfg, 0), students_for(cfg))
    assert sum(c["rows"] for c in counts) == 0


def _swap_test_gold(splits):
    """The same test examples (same texts) with every label flipped: each test question's gold
    moves to the wrong candidate of its pair."""
    from selective_w2sg.experiment.tasks import Splits

    pairs: dict[str, list[int]] = {}
    for e in splits.examples["test"]:
        pairs.setdefault(e.question_id, []).append(e.option_index)
    new_gold = {q: next(i for i in idx if i != g) for q, idx in pairs.items()
                for g in [next(e.gold for e in splits.examples["test"] if e.question_id == q)]}
    qs = dict(splits.questions)
    qs["test"] = [dataclasses.replace(q, gold=new_gold[q.question_id]) for q in qs["test"]]
    ex = dict(splits.examples)
    ex["test"] = [dataclasses.replace(e, gold=new_gold[e.question_id]) for e in ex["test"]]
    return Splits(splits.task, splits.seed, qs, ex)


def test_no_stage_reads_test_ground_truth(tmp_path, monkeypatch):
    """Flip every test label (same texts): every stage output -- predictions of every model on
    every split, the encode arrays, P(IK), smoothing, selection -- stays identical; only the
    evaluation changes."""
    from selective_w2sg.experiment import pipeline as pipeline_mod

    results = []
    for flip in (False, True):
        orig = pipeline_mod.build_splits
        if flip:
            monkeypatch.setattr(pipeline_mod, "build_splits", lambda task, **kw: _swap_test_gold(orig(task, **kw)))
        results.append(run_seed(_cfg(tmp_path / f"flip{flip}", method="all"), 0))
        monkeypatch.setattr(pipeline_mod, "build_splits", orig)
    r0, r1 = results
    assert np.array_equal(np.array(r0["models"]["weak"]["accuracy"]), 1 - np.array(r1["models"]["weak"]["accuracy"]))
    assert set(r0["stage_dirs"]) == set(r1["stage_dirs"])
    compared = 0
    for name, p0 in r0["stage_dirs"].items():
        p1 = Path(r1["stage_dirs"][name])
        for f in sorted(Path(p0).glob("*.npy")):
            np.testing.assert_array_equal(np.load(f), np.load(p1 / f.name), err_msg=f"{name}/{f.name}")
            compared += 1
    assert compared > 30


def test_cli_train_method_all(tmp_path):
    from typer.testing import CliRunner

    from selective_w2sg.cli import app

    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--task", "synthetic", "--method", "all", "--out", str(out),
                                 "--n-weak", "60", "--n-w2s", "100", "--n-test", "40", "--epochs", "5",
                                 "--k", "5", "--alpha", "0.5", "--seeds", "0,1"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    single_task = {n for n, st in STUDENTS.items() if not st.mixture_only}  # transfer_pik needs a mixture
    assert set(res["summary"]["models"]) == {"weak", "zero_shot", "ceiling", *single_task}
    for seed in res["seeds"]:
        assert 0.0 <= seed["selective"]["coverage_w2s_train"]["selective"] <= 1.0
        assert "pik_test" in seed and "label_accuracy_w2s_train" in seed["selective"]
    assert (out / "results.png").stat().st_size > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "all" and cfg["selective"]["k"] == 5


@pytest.mark.parametrize("signal", [False, True])
def test_smoothing_choice_keeps_labels_on_a_graph_without_signal(rng, signal):
    """calibrate's rule over the default grid: on embeddings that carry no signal about the labels
    (random neighbours) no smoothing beats the raw labels by more than noise, so alpha 0 is chosen
    and the labels stay as they were; on embeddings clustered by the true label, spreading wins."""
    from selective_w2sg.experiment.stages.smooth import smoothing_grid
    from selective_w2sg.experiment.stats import question_accuracy, simplest_within_one_se

    n = 600
    y = (rng.random(n) < 0.5).astype(np.float32)
    noisy = np.where(rng.random(n) < 0.7, y, 1 - y)  # weak labels 70% right, noise independent of x
    weak = np.clip(0.5 + (noisy - 0.5) * rng.uniform(0.2, 0.9, n), 0, 1).astype(np.float32)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    if signal:
        x[:, 0] += 4 * (y - 0.5)
    grid = smoothing_grid(SelectiveConfig())
    assert grid[0].alpha == 0 and len({g.alpha for g in grid}) > 1
    q = np.arange(n)
    spread = []
    for g in grid:
        spread.append(weak if g.alpha == 0 else sw.smooth_labels(sw.knn_graph(x, g.k, method="exact"), weak,
                                                                 alpha=g.alpha))
    acc = np.stack([question_accuracy(p, y, q) for p in spread])
    pick, se = simplest_within_one_se(acc, range(len(grid)))
    if signal:
        assert grid[pick].alpha > 0 and acc[pick].mean() > acc[0].mean() + 0.05
    else:
        assert grid[pick].alpha == 0 and np.array_equal(spread[pick], weak)
    assert acc[pick].mean() >= acc[0].mean()  # the chosen setting never lowers label accuracy
