"""Test metrics per seed, PGR, and their aggregate over seeds with paired contrasts. The only place
(with `analysis`) that reads test ground truth."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...graph.errors import DataError
from ..cache import StageDir
from ..pik import score_pik
from ..stats import contrast_table, pgr_ratio_of_means, question_accuracy
from ..tasks import Splits, source_of

BASELINES = ("weak", "ceiling", "zero_shot")  # models that are not students: no PGR


def binary_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """probs float (n,) P(y=1), labels int (n,) in {0, 1} -> accuracy and AUROC (nan with one class)."""
    from sklearn.metrics import roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.shape != labels.shape:
        raise DataError(f"predictions have shape {probs.shape}, labels {labels.shape}")
    acc = float(np.mean((probs > 0.5) == (labels == 1)))
    auroc = float(roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else float("nan")
    return {"accuracy": acc, "auroc": auroc}


def pgr(student: float, weak: float, ceiling: float) -> float | None:
    """(student - weak) / (ceiling - weak); None where the ceiling does not beat the weak model."""
    if ceiling <= weak:
        return None
    return (student - weak) / (ceiling - weak)


def evaluate_seed(splits: Splits, stages: Mapping[str, StageDir], *, metric: str = "accuracy") -> dict[str, Any]:
    """Test metrics of every stage with `preds_test`, and PGR of each student (by `metric`)."""
    y = splits.labels("test")
    models = {name: binary_metrics(d.npy("preds_test"), y) for name, d in stages.items()
              if (d.path / "preds_test.npy").is_file()}
    weak, ceil = models["weak"][metric], models["ceiling"][metric]
    students = [n for n in models if n not in BASELINES]
    ok = ceil > weak
    return {
        "task": splits.task,
        "seed": splits.seed,
        "metric": metric,
        "n_test": int(len(y)),
        "models": models,
        "pgr": {s: pgr(models[s][metric], weak, ceil) for s in students},
        "ceiling_beats_weak": bool(ok),
        "stage_dirs": {n: str(d.path) for n, d in stages.items()},
        **({"pik_test": pik_test_metrics(splits, stages)} if "pik" in stages else {}),
    }


def pik_test_metrics(splits: Splits, stages: Mapping[str, StageDir]) -> dict[str, Any]:
    """P(IK) on test: AUROC and calibration against whether the self-label is right there; beside
    it the AUROC of the strong model's own zero-shot confidence (no probe), the score a trained
    P(IK) must beat. `base_rate` is the strong model's zero-shot accuracy on test."""
    knows = stages["pik"].npy("self_test") == splits.labels("test")
    p = stages["pik"].npy("pik_test")
    qids = np.array([e.question_id for e in splits.examples["test"]])
    conf = None
    if "zero_shot" in stages:
        z = stages["zero_shot"].npy("preds_test").astype(np.float64)
        conf = np.maximum(z, 1 - z)
    out = score_pik(knows, p, conf, qids)
    xs = stages["pik"].path / "pik_xsource_test.npy"
    if xs.is_file():  # mixtures: P(IK) trained on the other sources only, on the same questions
        out["transfer_question_auroc"] = score_pik(knows, np.load(xs), None, qids)["question_auroc"]
    return out


def test_predictions(splits: Splits, stages: Mapping[str, StageDir]) -> dict[str, np.ndarray]:
    """What the paired statistics need from one seed: every model's P(y=1) on test (models x n),
    the labels and each example's question index."""
    names = [n for n, d in stages.items() if (d.path / "preds_test.npy").is_file()]
    ids, q = np.unique(np.array([e.question_id for e in splits.examples["test"]]), return_inverse=True)
    pool = {e.question_id for exs in splits.examples.values() for e in exs}
    return {"models": np.array(names), "preds": np.stack([stages[n].npy("preds_test") for n in names]),
            "labels": splits.labels("test"), "question": q.astype(np.int64),
            # for the pool-aware statistics: which pool questions were tested, and the pool's size
            "question_id": ids.astype(str), "n_pool_questions": np.int64(len(pool)),
            "source": np.array([source_of(str(i)) for i in ids])}


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for one value) of the finite values."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def aggregate(results: Sequence[Mapping[str, Any]], preds: Sequence[Mapping[str, np.ndarray]] | None = None,
              ) -> dict[str, Any]:
    """Seeds -> per model: accuracy and AUROC mean ± se; per student: PGR mean ± se over the
    seeds whose ceiling beats the weak model; the flagged seeds listed. With every seed's test
    predictions (`preds`, see `test_predictions`): per-question accuracy, PGR as a ratio of means
    with a bootstrap CI, and the paired contrasts of `stats.CONTRASTS` with CIs and Holm p-values."""
    if not results:
        raise DataError("no per-seed results to aggregate")
    names = list(results[0]["models"])
    flagged = [r["seed"] for r in results if not r["ceiling_beats_weak"]]
    out: dict[str, Any] = {"task": results[0]["task"], "seeds": [r["seed"] for r in results],
                           "metric": results[0]["metric"], "flagged_seeds": flagged, "models": {},
                           "oracle": list(results[0].get("oracle", []))}
    for n in names:
        row: dict[str, Any] = {}
        for m in ("accuracy", "auroc"):
            row[m], row[f"{m}_se"] = mean_se([r["models"][n][m] for r in results])
        if n not in BASELINES:
            vals = [r["pgr"][n] for r in results if r["pgr"].get(n) is not None]
            row["pgr"], row["pgr_se"] = mean_se(vals)
            row["pgr_n"] = len(vals)
        out["models"][n] = row
    if preds is not None and len(preds) == len(results):
        out.update(paired_summary(preds, names))
    sel = [r for r in results if "selective" in r]
    if sel:
        extra: dict[str, Any] = {}
        extra["pik_test_auroc"] = mean_se([r["pik_test"]["auroc"] for r in sel if "pik_test" in r])
        extra["confidence_test_auroc"] = mean_se([r["pik_test"].get("confidence_auroc", float("nan"))
                                                  for r in sel if "pik_test" in r])
        for out_key, key in (("pik_test_question_auroc", "question_auroc"),
                             ("confidence_test_question_auroc", "confidence_question_auroc"),
                             ("transfer_test_question_auroc", "transfer_question_auroc")):
            extra[out_key] = mean_se([r["pik_test"].get(key, float("nan")) for r in sel if "pik_test" in r])
        extra["pik_test_ece"] = mean_se([r["pik_test"]["ece"] for r in sel if "pik_test" in r])
        for part in ("easy_to_hard", "all_to_hard"):  # P(IK) across difficulties (analysis.pik_difficulty)
            for key in ("question_auroc", "confidence_question_auroc"):
                extra[f"pik_difficulty_{part}_{key}"] = mean_se(
                    [r["selective"].get("pik_difficulty", {}).get(part, {}).get(key, float("nan")) for r in sel])
        for name in sel[0]["selective"]["coverage_w2s_train"]:
            extra[f"coverage_{name}"] = mean_se([r["selective"]["coverage_w2s_train"][name] for r in sel])
        extra["coverage"] = extra.get("coverage_selective", (float("nan"), float("nan")))
        for src in sel[0]["selective"]["label_accuracy_w2s_train"]:
            extra[f"label_accuracy_{src}"] = mean_se([r["selective"]["label_accuracy_w2s_train"][src] for r in sel])
        out["selective"] = extra
    return out


def paired_summary(preds: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> dict[str, Any]:
    """Per-question test accuracy per model and seed -> question-level accuracy (mean ± se over
    re-splits), PGR as a ratio of means with a 95% CI, and the paired contrasts."""
    acc: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for p in preds:
        models = [str(m) for m in p["models"]]
        for n in names:
            acc[n].append(question_accuracy(p["preds"][models.index(n)], p["labels"], p["question"]))
    pool = None
    if all("question_id" in p and "n_pool_questions" in p for p in preds):
        ids = [np.asarray(p["question_id"]).astype(str) for p in preds]
        n_test = float(np.mean([len(i) for i in ids]))
        pool = {"ids": ids, "n_test": n_test, "n_train": float(np.mean([int(p["n_pool_questions"]) for p in preds])) - n_test}
    out: dict[str, Any] = {"question_accuracy": {n: dict(zip(("mean", "se"), mean_se([a.mean() for a in v])))
                                                 for n, v in acc.items()}}
    if "weak" in acc and "ceiling" in acc:
        out["pgr_ratio_of_means"] = {n: pgr_ratio_of_means(acc[n], acc["weak"], acc["ceiling"])
                                     for n in names if n not in BASELINES}
    out["contrasts"] = contrast_table(acc, pool=pool)
    if all("source" in p for p in preds):  # mixtures: every model's accuracy per source
        sources = sorted({str(x) for p in preds for x in p["source"]})
        if len(sources) > 1:
            out["question_accuracy_by_source"] = {
                src: {n: dict(zip(("mean", "se"), mean_se([a[np.asarray(p["source"]).astype(str) == src].mean()
                                                           for a, p in zip(v, preds)])))
                      for n, v in acc.items()} for src in sources}
    return out
