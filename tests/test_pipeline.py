"""Stages, cache reuse and invalidation, resume after an interrupted stage, evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from selective_w2sg.experiment.checks import check_config
from selective_w2sg.experiment.stages import students_for
from selective_w2sg.experiment.stages import fitting as stages_mod
from selective_w2sg.experiment.cache import DONE, StageDir, array_fingerprint, run_cached, stage_key
from selective_w2sg.experiment.evaluation import aggregate, binary_metrics, mean_se, pgr
from selective_w2sg.config import RunConfig
from selective_w2sg.experiment.pipeline import prepare_seed, run_pipeline, run_stages, run_targets
from selective_w2sg.experiment.stages.weak import run_weak
from selective_w2sg.config import TrainConfig

torch.set_num_threads(1)  # tiny models: extra threads only spin on a shared 2-core machine

SMALL = dict(n_weak=40, n_w2s=60, n_test=40)
FOLDS = tuple(f"weak-fold-{f}" for f in range(5))  # calibrate's cross-fitted weak models


def _cfg(tmp_path, **kw) -> RunConfig:
    train = kw.pop("train", TrainConfig(epochs=8, device="cpu"))
    return RunConfig.create(out=str(tmp_path / "run"), train=train, **{**SMALL, "method": "w2s", **kw})


def _run(cfg: RunConfig, seed: int = 0) -> dict[str, StageDir]:
    ctx = prepare_seed(cfg, seed)
    return run_stages(ctx, students_for(cfg))


# ------------------------------------------------------------------------------------------ cache


def test_run_cached_reuses_and_redoes(tmp_path) -> None:
    calls = []

    def compute(w):
        calls.append(1)
        w.npy("x", np.arange(3))
        return {"ok": True}

    a = run_cached(tmp_path, "s", {"a": 1}, {"in": "f"}, compute)
    assert not a.reused and a.done and a.npy("x").tolist() == [0, 1, 2]
    assert json.loads((a.path / "config.json").read_text())["config"] == {"a": 1}
    b = run_cached(tmp_path, "s", {"a": 1}, {"in": "f"}, compute)
    assert b.reused and b.path == a.path and len(calls) == 1
    c = run_cached(tmp_path, "s", {"a": 2}, {"in": "f"}, compute)
    assert c.path != a.path and len(calls) == 2
    # an output lost after DONE: not complete, redone
    (a.path / "x.npy").unlink()
    assert not run_cached(tmp_path, "s", {"a": 1}, {"in": "f"}, compute).reused


def test_interrupted_stage_is_wiped_and_redone(tmp_path) -> None:
    def crash(w):
        w.npy("half", np.zeros(2))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path, "s", {}, {}, crash)
    (path,) = (tmp_path / "s").iterdir()
    assert (path / "half.npy").exists() and not (path / DONE).exists()
    d = run_cached(tmp_path, "s", {}, {}, lambda w: w.npy("full", np.ones(2)))
    assert d.path == path and not d.reused and not (path / "half.npy").exists()


def test_keys() -> None:
    assert stage_key({"a": 1, "b": 2}, {}) == stage_key({"b": 2, "a": 1}, {})
    assert array_fingerprint(np.zeros(3, np.float32)) != array_fingerprint(np.zeros(3, np.float64))


# ------------------------------------------------------------------------------------------ stages


def test_stages_reuse_and_invalidation(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    first = _run(cfg)
    # calibrate: the out-of-fold weak labels `tune` trains its budget on, from its fold stages
    assert set(first) == {"weak", "encode", *FOLDS, "calibrate", "tune", "zero_shot", "ceiling", "naive", "aux_conf"}
    assert not any(d.reused for d in first.values())
    # the resolver's order: the references, then the students, each stage after what it needs
    from selective_w2sg.experiment.stages import STAGES

    order = list(first)
    assert order[0] == "weak"
    assert all(order.index(need) < order.index(name) for name in order for need in STAGES[name].needs)
    assert [n for n in order if first[n].has("preds_test")] == [
        "weak", "zero_shot", "ceiling", "naive", "aux_conf"]
    n = len(prepare_seed(cfg, 0).splits.examples["w2s_train"])
    assert first["weak"].npy("preds_w2s_train").shape == (n,)
    second = _run(cfg)
    assert all(d.reused for d in second.values())
    assert {k: d.path for k, d in first.items()} == {k: d.path for k, d in second.items()}
    # another learning rate: every training stage is redone; probe features are reused
    feats_before = set((cfg.cache_root / "features").iterdir())
    third = _run(_cfg(tmp_path, train=TrainConfig(epochs=8, lr=0.05, anchored_lr=5e-3, device="cpu")))
    trained = ("weak", *FOLDS, "calibrate", "tune", "ceiling", "naive", "aux_conf")
    assert not any(third[k].reused for k in trained) and third["encode"].reused and third["zero_shot"].reused
    assert set((cfg.cache_root / "features").iterdir()) == feats_before
    # another seed: other splits, other folders
    other = _run(cfg, seed=1)
    assert other["weak"].path != first["weak"].path


def test_calibrate_folds_are_resolved_stages(tmp_path) -> None:
    """calibrate's cross-fitting runs as declared stages (`weak-fold-<f>`, in the cache as
    `weak-fold/<key>`): the resolver runs them before calibrate, each trains without its own fold's
    questions, and calibrate's raw labels are each fold's predictions on its own questions."""
    from selective_w2sg.experiment.stages import STAGES
    from selective_w2sg.experiment.stages.weak_fold import fold_of, inner_val

    assert STAGES["calibrate"].needs == ("encode", *FOLDS)
    ctx = prepare_seed(_cfg(tmp_path), 0)
    order = []
    stages = run_targets(ctx, ["calibrate"], on_done=lambda name, d: order.append(name))
    assert order == ["encode", *FOLDS, "calibrate"]
    fold, val = fold_of(ctx), inner_val(ctx)
    assert set(fold.tolist()) == set(range(len(FOLDS)))
    expected = np.full(len(fold), np.nan, np.float32)
    for f, name in enumerate(FOLDS):
        d = stages[name]
        assert d.path.parent.name == "weak-fold"
        train = json.loads((d.path / "config.json").read_text())["inputs"]["train"]
        assert train[:2] == ["weak_train", ctx.splits.fingerprint("weak_train")]
        assert train[2] == array_fingerprint(np.flatnonzero((fold != f) & ~val))  # never its own fold
        expected[fold == f] = d.npy("preds_weak_train")[fold == f]
    np.testing.assert_array_equal(stages["calibrate"].npy("oof_raw"), expected)
    cal_inputs = json.loads((stages["calibrate"].path / "config.json").read_text())["inputs"]
    assert cal_inputs["folds"] == [stages[n].path.name for n in FOLDS]


def test_students_run_with_the_needs_they_declare() -> None:
    """A student's stage needs exactly what its module declares (encode and tune included, never
    added behind its back); a student that leaves them out is refused when it is defined."""
    from selective_w2sg.experiment.stages import STAGES, STUDENTS
    from selective_w2sg.experiment.stages.students import Student, weak_soft_labels

    for name, st in STUDENTS.items():
        assert STAGES[name].needs == st.needs and {"encode", "tune"} <= set(st.needs), name
        if st.decision is not None:  # a selection student: its decisions are a stage of the graph
            assert STAGES[st.decision.name] is st.decision and st.needs[0] == st.decision.name
    with pytest.raises(ValueError, match="tune"):
        Student("lazy", "xent", ("weak", "encode"), weak_soft_labels)


def test_student_keyed_by_its_labels(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    ctx = prepare_seed(cfg, 0)
    n_tr, n_va = (len(ctx.splits.examples[s]) for s in ("w2s_train", "w2s_val"))
    a = stages_mod.run_student(ctx, "custom", np.full(n_tr, 0.3, np.float32), np.full(n_va, 0.3, np.float32))
    b = stages_mod.run_student(ctx, "custom", np.full(n_tr, 0.3, np.float32), np.full(n_va, 0.3, np.float32))
    c = stages_mod.run_student(ctx, "custom", np.full(n_tr, 0.7, np.float32), np.full(n_va, 0.3, np.float32))
    assert b.reused and b.path == a.path and c.path != a.path


def test_resume_after_interrupted_stage(tmp_path, monkeypatch) -> None:
    cfg = _cfg(tmp_path)
    real = stages_mod.fit_anchored_head

    def dies_on_aux(head, train, labels, budget, loss, cfg):
        if loss == "aux_conf":
            raise KeyboardInterrupt  # the run is killed while the aux-conf student trains
        return real(head, train, labels, budget, loss, cfg)

    monkeypatch.setattr(stages_mod, "fit_anchored_head", dies_on_aux)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg)
    partial = list((cfg.cache_root / "student-aux_conf").iterdir())
    assert len(partial) == 1 and not (partial[0] / DONE).exists()
    monkeypatch.setattr(stages_mod, "fit_anchored_head", real)
    resumed = _run(cfg)
    assert {k for k, d in resumed.items() if not d.reused} == {"aux_conf"}
    assert resumed["aux_conf"].done and resumed["aux_conf"].path == partial[0]


def test_weak_never_sees_w2s_ground_truth(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    ctx = prepare_seed(cfg, 0)
    d = run_weak(ctx)
    cfg_json = json.loads((d.path / "config.json").read_text())
    assert cfg_json["inputs"]["train"][0] == "weak_train" and cfg_json["inputs"]["val"][0] == "weak_train"
    mask = stages_mod.weak_val_mask(ctx.splits, 0)
    val_q = {e.question_id for e, m in zip(ctx.splits.examples["weak_train"], mask) if m}
    tr_q = {e.question_id for e, m in zip(ctx.splits.examples["weak_train"], mask) if not m}
    assert val_q and tr_q and not val_q & tr_q


# ------------------------------------------------------------------------------------------ evaluation


def test_metrics_and_pgr() -> None:
    m = binary_metrics(np.array([0.9, 0.2, 0.6, 0.4]), np.array([1, 0, 0, 1]))
    assert m == {"accuracy": 0.5, "auroc": 0.75}
    assert pgr(0.7, 0.6, 0.8) == pytest.approx(0.5)
    assert pgr(0.7, 0.8, 0.8) is None
    mean, se = mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1.0 / math.sqrt(3))
    assert mean_se([5.0]) == (5.0, 0.0)


def test_aggregate_flags_bad_seeds() -> None:
    def res(seed, w, c, s):
        return {"task": "t", "seed": seed, "metric": "accuracy",
                "models": {"weak": {"accuracy": w, "auroc": w}, "ceiling": {"accuracy": c, "auroc": c},
                           "naive": {"accuracy": s, "auroc": s}},
                "pgr": {"naive": pgr(s, w, c)}, "ceiling_beats_weak": c > w}

    summary = aggregate([res(0, 0.6, 0.8, 0.7), res(1, 0.6, 0.8, 0.8), res(2, 0.7, 0.65, 0.7)])
    assert summary["flagged_seeds"] == [2]
    assert summary["models"]["naive"]["pgr"] == pytest.approx(0.75)
    assert summary["models"]["naive"]["pgr_n"] == 2


def test_run_pipeline_writes_results(tmp_path) -> None:
    cfg = _cfg(tmp_path, seeds=(0, 1))
    summary = run_pipeline(cfg)
    out = tmp_path / "run"
    assert (out / "results.png").stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["seeds"] == [0, 1] == summary["seeds"]
    for s in (0, 1):
        r = json.loads((out / f"seed{s}" / "results.json").read_text())
        assert set(r["models"]) == {"weak", "zero_shot", "ceiling", "naive", "aux_conf"}
        assert json.loads((out / f"seed{s}" / "splits.json").read_text())["seed"] == s
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 8


def test_full_mode_pipeline(tmp_path) -> None:
    cfg = _cfg(tmp_path, students=("naive",), train=TrainConfig(mode="full", epochs=1, lr=1e-3, device="cpu"))
    stages = _run(cfg)
    assert set(stages) == {"weak", "encode", *FOLDS, "calibrate", "tune", "zero_shot", "ceiling", "naive"}
    assert stages["tune"].json("tune")["C"] is None  # full mode: no anchor, students early-stop
    assert not (cfg.cache_root / "features").exists()  # full mode tokenises; it caches no features
    p = stages["naive"].npy("preds_test")
    assert p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))


def test_config_round_trips_through_its_json(tmp_path) -> None:
    from selective_w2sg.graph.errors import ConfigError, DataError
    from selective_w2sg.graph.io import save_json
    from selective_w2sg.config import SelectiveConfig

    cfg = RunConfig.create(seeds=(0, 2), students=("naive",), pool_seed=3, out=str(tmp_path),
                         selective=SelectiveConfig(k=7, pik="mlp", pik_c=0.5),
                         train=TrainConfig(epochs=3, lr=0.1))
    save_json(tmp_path / "config.json", json.loads(json.dumps(cfg.to_dict())))  # as a run writes it
    assert RunConfig.load(tmp_path) == cfg
    bad = cfg.to_dict()
    bad["selective"]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        RunConfig.from_dict(bad)
    with pytest.raises(DataError, match="not a run folder"):
        RunConfig.load(tmp_path / "nowhere")


def test_text_row_store_computes_each_text_once(tmp_path) -> None:
    from selective_w2sg.experiment.cache import TextRowStore

    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    store = TextRowStore(tmp_path, "features", {"model": "m"})
    rows, n = store.get(["aa", "b", "aa"], embed)
    assert n == 2 and calls == [["aa", "b"]]
    np.testing.assert_array_equal(rows, [[2, 2], [1, 0], [2, 2]])
    rows, n = TextRowStore(tmp_path, "features", {"model": "m"}).get(["b", "caa"], embed)  # a new process
    assert n == 1 and calls[-1] == ["caa"]
    np.testing.assert_array_equal(rows, [[1, 0], [3, 2]])
    assert store.count() == 3
    assert TextRowStore(tmp_path, "features", {"model": "other"}).count() == 0  # another config
    # a part whose key list was never written (a killed run) is not used
    (store.path / "part-0000000000000000.npy").write_bytes(b"garbage")
    assert store.count() == 3
    # --force recomputes, and the newer rows win
    rows, n = store.get(["b"], lambda t: np.full((len(t), 2), 9, np.float32), force=True)
    assert n == 1 and store.get(["b"], embed)[0].tolist() == [[9, 9]]


def test_features_shared_across_seeds_of_one_pool(tmp_path, monkeypatch) -> None:
    """With --pool-seed every seed re-splits the same questions: the second seed embeds only the
    texts the first never had (each question's distractor is drawn per split and seed)."""
    embedded = []
    real = stages_mod.extract_features

    def counting(bb, texts, **kw):
        embedded.append(len(texts))
        return real(bb, texts, **kw)

    monkeypatch.setattr(stages_mod, "extract_features", counting)
    cfg = RunConfig.create(out=str(tmp_path), n_weak=40, n_w2s=60, n_test=30, pool_seed=0,
                         train=TrainConfig(epochs=1, device="cpu"))
    ctx0 = prepare_seed(cfg, 0)
    x0 = stages_mod.features(ctx0, ctx0.weak, "test")
    for s in ("weak_train", "w2s_train", "w2s_val"):
        stages_mod.features(ctx0, ctx0.weak, s)
    first = sum(embedded)
    assert first == sum(len(ctx0.splits.examples[s]) for s in ("weak_train", "w2s_train", "w2s_val", "test"))
    ctx1 = prepare_seed(cfg, 1)
    x1 = stages_mod.features(ctx1, ctx1.weak, "w2s_train")
    seen = {t for s in ("weak_train", "w2s_train", "w2s_val", "test") for t in ctx0.splits.texts(s)}
    new = set(ctx1.splits.texts("w2s_train")) - seen
    assert 0 < len(new) < len(ctx1.splits.texts("w2s_train")) / 2
    assert sum(embedded) == first + len(new)
    # the same text gives the same row whichever split it came from
    where0 = {t: i for i, t in enumerate(ctx0.splits.texts("test"))}
    shared = [(where0[t], i) for i, t in enumerate(ctx1.splits.texts("w2s_train")) if t in where0]
    assert shared
    np.testing.assert_array_equal(x0[[a for a, _ in shared]], x1[[b for _, b in shared]])


def test_device_and_precision_are_in_the_cache_keys(tmp_path) -> None:
    """CPU-fp32 and GPU-bf16 outputs must never be reused for one another."""
    cfg = _cfg(tmp_path, students=("naive",))
    stages = _run(cfg)
    for name in ("weak", "encode", "tune", "ceiling", "naive"):
        config = json.loads((stages[name].path / "config.json").read_text())["config"]
        assert (config["device"], config["precision"]) == ("cpu", "fp32"), name
    store = json.loads(next((cfg.cache_root / "features").glob("*/config.json")).read_text())
    assert store["precision"] == "fp32" and store["device"] == "cpu"


def test_cpu_bf16_encode_is_keyed_apart_and_close_to_fp32(tmp_path) -> None:
    """--precision bf16 on the CPU (faster encoder passes): its encode pass gets its own cache
    folder, marked bf16, and its outputs stay near the fp32 pass's."""
    from selective_w2sg.experiment.stages.encode import load_encoded

    outs = {}
    for precision in ("fp32", "bf16"):
        cfg = _cfg(tmp_path, students=("naive",), train=TrainConfig(epochs=8, device="cpu", precision=precision))
        ctx = prepare_seed(cfg, 0)
        d = run_stages(ctx, ["encode"])["encode"]
        assert json.loads((d.path / "config.json").read_text())["config"]["precision"] == precision
        outs[precision] = (d.path, load_encoded(d))
    (p32, e32), (p16, e16) = outs["fp32"], outs["bf16"]
    assert p32 != p16
    cos = np.sum(e32.embedding * e16.embedding, axis=1)
    assert cos.min() > 0.99  # bf16 rounding, not a different computation
    assert not np.array_equal(e32.embedding, e16.embedding)  # and bf16 really ran


def test_mixture_runs_end_to_end_with_results_per_source(tmp_path) -> None:
    """`--task sciq+boolq`: one pool, one weak supervisor, every model scored per source, and the
    contrasts carry the pool-aware statistics."""
    from test_tasks import _mixture_files

    from selective_w2sg.experiment.pipeline import run_pipeline

    cfg = RunConfig.create(out=str(tmp_path / "run"), task="sciq+boolq", data=_mixture_files(tmp_path),
                           per_source=100, n_weak=60, n_w2s=80, n_test=60, resplits=2,
                           students=("selective", "transfer_pik", "naive", "self_only"),
                           train=TrainConfig(epochs=4, device="cpu"))
    summary = run_pipeline(cfg)
    by = summary["question_accuracy_by_source"]
    assert set(by) == {"sciq", "boolq"} and {"weak", "zero_shot", "selective"} <= set(by["sciq"])
    # the per-source accuracies average (weighted by test questions) to the overall one
    preds = [np.load(tmp_path / "run" / f"seed{s}" / "test_predictions.npz") for s in (0, 1)]
    assert all(set(p["source"]) == {"sciq", "boolq"} for p in preds)
    row = next(r for r in summary["contrasts"] if (r["a"], r["b"]) == ("selective", "zero_shot"))
    assert row["pool"]["ci95"][0] <= row["mean"] <= row["pool"]["ci95"][1] and 0 <= row["pool"]["p"] <= 1
    assert "corrected_t" in row
    # P(IK) across tasks: each source scored by a probe trained on the other source only
    assert 0 <= summary["selective"]["transfer_test_question_auroc"][0] <= 1
    assert "transfer_pik" in by["boolq"]
    from selective_w2sg.graph.errors import ConfigError

    with pytest.raises(ConfigError, match="mixture"):
        check_config(RunConfig.create(out=str(tmp_path / "x"), students=("transfer_pik",)))
    assert "transfer_pik" not in students_for(RunConfig.create(out=str(tmp_path / "x"), method="all"))
