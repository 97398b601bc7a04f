"""Evaluation: accuracy and AUROC on `test`, performance gap recovered (PGR), aggregation over
seeds (mean ± standard error), a rich table and a PNG plot. The only module that reads test
ground truth."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cache import StageDir
from ..graph.errors import DataError
from ..graph.io import atomic_path, save_json
from .pik import score_pik
from .stats import contrast_table, pgr_ratio_of_means, question_accuracy
from .tasks import Splits, source_of

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


def _fmt(mean: float, se: float, pct: bool = True, one: bool = False) -> str:
    """`mean ± se` in percent (or plain with pct=False); just the mean when `one` (one seed: no spread)."""
    if not math.isfinite(mean):
        return "—"
    k = 100.0 if pct else 1.0
    m = f"{mean * k:.1f}" if pct else f"{mean:.2f}"
    if one or not math.isfinite(se):
        return m
    return f"{m} ± {se * k:.1f}" if pct else f"{m} ± {se:.2f}"


def contrasts_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of the paired contrasts (None without them)."""
    from rich.table import Table

    rows = summary.get("contrasts")
    if not rows:
        return None
    n = rows[0]["n_resplits"]
    pooled = "pool" in rows[0]
    t = Table(title=f"{summary['task']}: paired test-accuracy differences, points (question-level, {n} re-split(s))")
    cols = ("contrast", "mean", *(("pool 95% CI", "p (pool)", "p (Holm, table)") if pooled else ()),
            "protocol 95% CI", "p (protocol)")
    for col in cols:
        t.add_column(col, justify="left" if col == "contrast" else "right")
    fp = (lambda v: "—" if v is None or not math.isfinite(v) else f"{v:.3g}")  # noqa: E731
    fci = (lambda c: "—" if not all(x is not None and math.isfinite(x) for x in c)  # noqa: E731
           else f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]")
    for r in rows:
        pool = [fci(r["pool"]["ci95"]), fp(r["pool"]["p"]), fp(r["pool"].get("p_holm_table"))] if pooled else []
        t.add_row(f"{r['a']} - {r['b']}", f"{100 * r['mean']:+.1f}", *pool, fci(r["ci95"]), fp(r["p"]))
    t.caption = ("pool: bootstrap over the pool's questions (each question's results across re-splits move "
                 "together) and the re-splits' training residuals: the basis of a claim. protocol: re-splits "
                 "treated as independent, which they are not (they share questions): the variability of the "
                 "protocol on this pool only.")
    return t


def sources_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of question-level test accuracy per source of a mixture (None otherwise)."""
    from rich.table import Table

    by = summary.get("question_accuracy_by_source")
    if not by:
        return None
    sources = list(by)
    t = Table(title=f"{summary['task']}: question-level test accuracy % per source (mean ± s.e. over re-splits)")
    t.add_column("model")
    for src in sources:
        t.add_column(src, justify="right")
    one = len(summary["seeds"]) == 1
    for name in by[sources[0]]:
        t.add_row(name, *[_fmt(by[src][name]["mean"], by[src][name]["se"], one=one) for src in sources])
    return t


def results_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of the aggregate: accuracy, AUROC (percent) and PGR per model."""
    from rich.table import Table

    seeds = summary["seeds"]
    spread = " (mean ± s.e.)" if len(seeds) > 1 else ""
    t = Table(title=f"{summary['task']}: test metrics over {len(seeds)} seed(s){spread}")
    t.add_column("model")
    t.add_column("accuracy %", justify="right")
    t.add_column("AUROC %", justify="right")
    t.add_column(f"PGR ({summary['metric']})", justify="right")
    oracle = set(summary.get("oracle", []))
    ratio = summary.get("pgr_ratio_of_means", {})
    if ratio:
        t.add_column("PGR, ratio of means [95% CI]", justify="right")
    for name, row in summary["models"].items():
        p = _fmt(row["pgr"], row["pgr_se"], pct=False, one=len(seeds) == 1) if "pgr" in row else ""
        label = f"{name} [yellow](oracle: upper bound)[/]" if name in oracle else name
        cells = [label, _fmt(row["accuracy"], row["accuracy_se"], one=len(seeds) == 1),
                 _fmt(row["auroc"], row["auroc_se"], one=len(seeds) == 1), p]
        if ratio:
            r = ratio.get(name)
            cells.append("" if r is None else f"{r['pgr']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
        t.add_row(*cells)
    one = len(seeds) == 1
    if "selective" in summary:
        x = summary["selective"]
        accs = ", ".join(f"{k.removeprefix('label_accuracy_')} {_fmt(*v, one=one)}" for k, v in x.items()
                         if k.startswith("label_accuracy_"))
        t.caption = (f"P(IK) test AUROC per question {_fmt(*x['pik_test_question_auroc'], one=one)} % (zero-shot "
                     f"confidence alone: {_fmt(*x['confidence_test_question_auroc'], one=one)} %), selective coverage {_fmt(*x['coverage'], one=one)} %; "
                     f"w2s_train label accuracy (analysis only): {accs}")
    if summary["flagged_seeds"]:
        t.caption = (t.caption + "\n" if t.caption else "") + (f"[yellow]ceiling <= weak on seed(s) {summary['flagged_seeds']}: PGR undefined there, "
                     "left out of the PGR mean[/]")
    return t


def plot_summary(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of test accuracy (mean ± se) per model, PGR in the labels, and (with re-splits)
    the paired contrasts with their 95% CIs beside it; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["models"])
    rows = [summary["models"][n] for n in names]
    contrasts = summary.get("contrasts") or []
    ncols = 2 if contrasts else 1
    fig, axes = plt.subplots(1, ncols, figsize=(1.0 * len(names) + 2 + 5 * (ncols - 1), 4.2), squeeze=False)
    ax = axes[0][0]
    oracle = set(summary.get("oracle", []))
    colors = ["#999999" if n == "weak" else "#333333" if n == "ceiling" else "#7a7a3a" if n == "zero_shot"
              else "#d59a3a" if n in oracle else "#3a7bd5" for n in names]
    ax.bar(range(len(names)), [r["accuracy"] for r in rows], yerr=[r["accuracy_se"] for r in rows], color=colors,
           capsize=4)
    ax.set_xticks(range(len(names)), [f"{n}*" if n in oracle else n for n in names], rotation=45, ha="right")
    for i, r in enumerate(rows):
        if "pgr" in r and math.isfinite(r["pgr"]):
            ax.annotate(f"{r['pgr']:.2f}", (i, r["accuracy"]), ha="center", va="bottom",
                        xytext=(0, 6), textcoords="offset points", fontsize=7)
    accs = [r["accuracy"] for r in rows if math.isfinite(r["accuracy"])]
    lo = max(0.0, min(accs) - 0.1) if accs else 0.0
    ax.set_ylim(lo, 1.0)
    ax.set_ylabel("test accuracy (labels: PGR)")
    ax.set_title(f"{summary['task']} ({len(summary['seeds'])} re-split(s)){'; * oracle' if oracle else ''}")
    if contrasts:
        cx = axes[0][1]
        labels = [f"{c['a']} - {c['b']}" for c in contrasts]
        means = [100 * c["mean"] for c in contrasts]
        err = [[100 * (c["mean"] - c["ci95"][0]) for c in contrasts], [100 * (c["ci95"][1] - c["mean"]) for c in contrasts]]
        y = list(range(len(contrasts)))[::-1]
        cx.errorbar(means, y, xerr=err, fmt="o", color="#3a7bd5", capsize=4)
        cx.axvline(0, color="#999999", lw=1)
        cx.set_yticks(y, labels, fontsize=8)
        cx.set_xlabel("paired accuracy difference, points (95% CI)")
        cx.set_title("contrasts")
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return p


# What `aggregate` reads from each seed's results.json.
SEED_KEYS = ("task", "seed", "metric", "models", "pgr", "ceiling_beats_weak")
PREDICTION_ARRAYS = ("models", "preds", "labels", "question")


def read_json(path: Path, what: str) -> Any:
    """A JSON file, or a `DataError` naming it: unreadable, empty, truncated, not JSON."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{what} {str(path)!r} cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not text.strip():
        raise DataError(f"{what} {str(path)!r} is empty")
    try:
        return json.loads(text)
    except ValueError as e:
        raise DataError(f"{what} {str(path)!r} is corrupt: not JSON ({e})") from None


def load_seed_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every `seed*/results.json` under a run folder; a corrupt one (not JSON, or without
    what the aggregate needs) is a `DataError` naming it."""
    root = Path(out_dir)
    if not root.is_dir():
        raise DataError(f"run folder {str(root)!r} does not exist")
    files = sorted(root.glob("seed*/results.json"), key=lambda p: p.parent.name)
    if not files:
        raise DataError(f"no seed*/results.json under {str(root)!r}: run `sw2s train --out {root}` first")
    out = []
    for f in files:
        r = read_json(f, "seed results")
        missing = [k for k in SEED_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise DataError(f"seed results {str(f)!r} is corrupt: no {', '.join(map(repr, missing))}")
        if not isinstance(r["models"], dict) or not r["models"] or not isinstance(r["pgr"], dict):
            raise DataError(f"seed results {str(f)!r} is corrupt: 'models' and 'pgr' must be non-empty objects")
        out.append(r)
    return out


def load_test_predictions(out_dir: str | os.PathLike[str], seeds: Sequence[int], *, required: bool = False,
                          ) -> list[dict[str, np.ndarray]] | None:
    """Every seed's `seed<k>/test_predictions.npz`; None if one is missing (`required`: a
    `DataError` naming it). An empty, truncated or foreign file is always a `DataError` naming it."""
    import zipfile

    files = [Path(out_dir) / f"seed{s}" / "test_predictions.npz" for s in seeds]
    for f in files:
        if not f.is_file():
            if required:
                raise DataError(f"test predictions {str(f)!r} are missing: rerun `sw2s train` with this run's "
                                "settings to write them (report would otherwise drop the paired statistics)")
            return None
    out = []
    for f in files:
        if f.stat().st_size == 0:
            raise DataError(f"test predictions {str(f)!r} are empty (0 bytes)")
        try:
            with open(f, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # (numpy leaks the file on a bad zip)
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, AttributeError, TypeError) as e:
            reason = str(e).split(". ")[0].replace("\n", " ") or type(e).__name__
            raise DataError(f"test predictions {str(f)!r} are truncated or corrupt ({reason})") from None
        missing = [a for a in PREDICTION_ARRAYS if a not in arrays]
        if missing:
            raise DataError(f"test predictions {str(f)!r} are corrupt: no {', '.join(map(repr, missing))} array")
        out.append(arrays)
    return out


def _lost(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What an aggregate `new` would drop from `old`: top-level sections, seeds, models."""
    lost = [f"section {k!r}" for k in old if k not in new]
    lost += [f"seed {s}" for s in old.get("seeds", []) if s not in new.get("seeds", [])]
    lost += [f"model {m!r}" for m in old.get("models", {}) if m not in new.get("models", {})]
    return lost


def write_report(out_dir: str | os.PathLike[str], results: Sequence[Mapping[str, Any]], *, keep: bool = False,
                 ) -> dict[str, Any]:
    """Aggregate per-seed results into `results.json` and `results.png` in `out_dir`.
    `keep` (`sw2s report`): every seed's test predictions are required, and a `results.json`
    that the new aggregate would shrink (a section, seed or model dropped) is left as it is,
    with a `DataError` saying what would be lost."""
    root = Path(out_dir)
    old: Mapping[str, Any] = {}
    if keep and (root / "results.json").is_file():
        try:
            prev = json.loads((root / "results.json").read_text())
            old = prev.get("summary", {}) if isinstance(prev, dict) and isinstance(prev.get("summary"), dict) else {}
        except (OSError, ValueError):  # unreadable: nothing to keep, regenerate it
            old = {}
    # a run whose aggregate never had the paired statistics may lack the predictions they need
    required = keep and ("contrasts" in old or "question_accuracy" in old or not old)
    preds = load_test_predictions(out_dir, [r["seed"] for r in results], required=required)
    summary = aggregate(results, preds)
    lost = _lost(old, summary)
    if lost:
        raise DataError(f"refusing to rewrite {str(root / 'results.json')!r}: the new aggregate would drop "
                        f"{', '.join(lost[:6])}{' ...' if len(lost) > 6 else ''}")
    save_json(root / "results.json", {"summary": summary, "seeds": list(results)})
    plot_summary(summary, root / "results.png")
    return summary
