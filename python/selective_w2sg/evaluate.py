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
from .errors import DataError
from .io import atomic_path, save_json
from .tasks import Splits

BASELINES = ("weak", "ceiling")


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
    """P(IK) on test: AUROC and calibration against whether the self-label is right there."""
    from .pik import auroc, reliability

    knows = stages["pik"].npy("self_test") == splits.labels("test")
    p = stages["pik"].npy("pik_test")
    return {"auroc": auroc(knows, p), "base_rate": float(knows.mean()), **reliability(knows, p)}


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for one value) of the finite values."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Seeds -> per model: accuracy and AUROC mean ± se; per student: PGR mean ± se over the
    seeds whose ceiling beats the weak model; the flagged seeds listed."""
    if not results:
        raise DataError("no per-seed results to aggregate")
    names = list(results[0]["models"])
    flagged = [r["seed"] for r in results if not r["ceiling_beats_weak"]]
    out: dict[str, Any] = {"task": results[0]["task"], "seeds": [r["seed"] for r in results],
                           "metric": results[0]["metric"], "flagged_seeds": flagged, "models": {}}
    for n in names:
        row: dict[str, Any] = {}
        for m in ("accuracy", "auroc"):
            row[m], row[f"{m}_se"] = mean_se([r["models"][n][m] for r in results])
        if n not in BASELINES:
            vals = [r["pgr"][n] for r in results if r["pgr"].get(n) is not None]
            row["pgr"], row["pgr_se"] = mean_se(vals)
            row["pgr_n"] = len(vals)
        out["models"][n] = row
    sel = [r for r in results if "selective" in r]
    if sel:
        extra: dict[str, Any] = {}
        extra["pik_test_auroc"] = mean_se([r["pik_test"]["auroc"] for r in sel if "pik_test" in r])
        extra["pik_test_ece"] = mean_se([r["pik_test"]["ece"] for r in sel if "pik_test" in r])
        extra["coverage"] = mean_se([r["selective"]["coverage_w2s_train"]["selective"] for r in sel])
        for src in sel[0]["selective"]["label_accuracy_w2s_train"]:
            extra[f"label_accuracy_{src}"] = mean_se([r["selective"]["label_accuracy_w2s_train"][src] for r in sel])
        out["selective"] = extra
    return out


def _fmt(mean: float, se: float, pct: bool = True) -> str:
    if not math.isfinite(mean):
        return "—"
    k = 100.0 if pct else 1.0
    return f"{mean * k:.1f} ± {se * k:.1f}" if pct else f"{mean:.2f} ± {se:.2f}"


def results_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table of the aggregate: accuracy, AUROC (percent) and PGR per model."""
    from rich.table import Table

    seeds = summary["seeds"]
    t = Table(title=f"{summary['task']}: test metrics over {len(seeds)} seed(s) (mean ± s.e.)")
    t.add_column("model")
    t.add_column("accuracy %", justify="right")
    t.add_column("AUROC %", justify="right")
    t.add_column(f"PGR ({summary['metric']})", justify="right")
    for name, row in summary["models"].items():
        p = _fmt(row["pgr"], row["pgr_se"], pct=False) if "pgr" in row else ""
        t.add_row(name, _fmt(row["accuracy"], row["accuracy_se"]), _fmt(row["auroc"], row["auroc_se"]), p)
    if "selective" in summary:
        x = summary["selective"]
        accs = ", ".join(f"{k.removeprefix('label_accuracy_')} {_fmt(*v)}" for k, v in x.items()
                         if k.startswith("label_accuracy_"))
        t.caption = (f"P(IK) test AUROC {_fmt(*x['pik_test_auroc'])} %, self-label coverage {_fmt(*x['coverage'])} %; "
                     f"w2s_train label accuracy (analysis only): {accs}")
    if summary["flagged_seeds"]:
        t.caption = (t.caption + "\n" if t.caption else "") + (f"[yellow]ceiling <= weak on seed(s) {summary['flagged_seeds']}: PGR undefined there, "
                     "left out of the PGR mean[/]")
    return t


def plot_summary(summary: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of test accuracy (mean ± se) per model, PGR in the labels; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["models"])
    rows = [summary["models"][n] for n in names]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    colors = ["#999999" if n == "weak" else "#333333" if n == "ceiling" else "#3a7bd5" for n in names]
    ax.bar(names, [r["accuracy"] for r in rows], yerr=[r["accuracy_se"] for r in rows], color=colors, capsize=4)
    for i, r in enumerate(rows):
        if "pgr" in r and math.isfinite(r["pgr"]):
            ax.annotate(f"PGR {r['pgr']:.2f}", (i, r["accuracy"]), ha="center", va="bottom",
                        xytext=(0, 6), textcoords="offset points", fontsize=8)
    accs = [r["accuracy"] for r in rows if math.isfinite(r["accuracy"])]
    lo = max(0.0, min(accs) - 0.1) if accs else 0.0
    ax.set_ylim(lo, 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{summary['task']} ({len(summary['seeds'])} seed(s))")
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return p


def load_seed_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every `seed*/results.json` under a run folder."""
    root = Path(out_dir)
    if not root.is_dir():
        raise DataError(f"run folder {str(root)!r} does not exist")
    files = sorted(root.glob("seed*/results.json"), key=lambda p: p.parent.name)
    if not files:
        raise DataError(f"no seed*/results.json under {str(root)!r}: run `sw2s train --out {root}` first")
    return [json.loads(f.read_text()) for f in files]


def write_report(out_dir: str | os.PathLike[str], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-seed results into `results.json` and `results.png` in `out_dir`."""
    summary = aggregate(results)
    root = Path(out_dir)
    save_json(root / "results.json", {"summary": summary, "seeds": list(results)})
    plot_summary(summary, root / "results.png")
    return summary
