#!/usr/bin/env python
"""The README's evidence from finished `sw2s train --resplits N` run folders (one per regime):

1. the component table: per regime, P(IK) question-level test AUROC (trained, and the strong
   model's confidence alone), how often P(IK)'s cross-validation picked each candidate and an edge
   of its grid, smoothing's label-accuracy change on weak_train at the chosen setting (and the
   settings chosen), the correction strength C chosen by `tune`, and each student's w2s_train
   label accuracy beside its test accuracy;
2. test accuracy of the baselines and students (question level, mean ± s.e. over re-splits), per
   source for mixtures;
3. the primary contrasts with pool-aware 95% CIs (pool bootstrap: the pool's questions resampled,
   each question's results moving together across re-splits) and Holm p-values over the whole
   family (every primary contrast x every regime given), beside the corrected resampled t-test.

    python examples/real_models/evidence.py RUN_DIR [RUN_DIR ...] [--json OUT.json]

`best_simple` is, per re-split, naive or self_only, whichever weak_train says is better (the
weak model's out-of-fold accuracy there against the strong model's zero-shot accuracy there):
never chosen on w2s or test ground truth.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from selective_w2sg.experiment.stats import contrast as stats_contrast
from selective_w2sg.experiment.stats import holm, question_accuracy

MODELS = ("weak", "zero_shot", "ceiling", "naive", "aux_conf", "self_only", "smooth_only", "selective", "pik_only",
          "random_select", "constant_pik", "confidence_pik", "oracle_pik")
PRIMARY = (("selective", "naive"), ("selective", "self_only"), ("selective", "random_select"),
           ("selective", "best_simple"))
N_BOOT = 4000
HEADROOM = 3.0  # points: examples/real_models/preregistration.md
SIMPLE = ("naive", "aux_conf", "self_only")


def pct(m: float | None, s: float | None = None) -> str:
    if m is None or not math.isfinite(m):
        return "—"
    return f"{100 * m:.1f}" if s is None else f"{100 * m:.1f} ± {100 * s:.1f}"


def mean_se(v: list[float]) -> tuple[float, float]:
    a = np.array([x for x in v if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(a) == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0


def load_run(run: Path) -> dict[str, Any]:
    seeds = sorted(int(p.name[4:]) for p in run.glob("seed*") if (p / "test_predictions.npz").is_file())
    res = {s: json.loads((run / f"seed{s}" / "results.json").read_text()) for s in seeds}
    preds = {s: dict(np.load(run / f"seed{s}" / "test_predictions.npz")) for s in seeds}
    acc: dict[str, list[np.ndarray]] = {}
    ids, sources = [], []
    for s in seeds:
        p = preds[s]
        models = [str(m) for m in p["models"]]
        for n in models:
            acc.setdefault(n, []).append(question_accuracy(p["preds"][models.index(n)], p["labels"], p["question"]))
        ids.append(np.asarray(p["question_id"]).astype(str))
        sources.append(np.asarray(p["source"]).astype(str))
        sel = res[s].get("selective", {})
        weak_oof = sel.get("calibrate", {}).get("oof_raw_accuracy")
        zero = sel.get("pik", {}).get("train_base_rate")
        pick = "naive" if weak_oof is not None and zero is not None and weak_oof > zero else "self_only"
        acc.setdefault("best_simple", []).append(acc[pick][-1])
        res[s]["best_simple_is"] = pick
    n_test = float(np.mean([len(i) for i in ids]))
    n_pool = float(np.mean([int(preds[s]["n_pool_questions"]) for s in seeds]))
    return {"name": run.name, "seeds": seeds, "results": res, "acc": acc, "ids": ids, "sources": sources,
            "n_test": n_test, "n_train": n_pool - n_test}


def contrast(run: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """A - B with the package's pool-aware statistics (`stats.contrast`): the pool bootstrap's CI
    and p, the corrected resampled t-test beside them, the protocol CI kept for reference."""
    c = stats_contrast(run["acc"][a], run["acc"][b], n_boot=N_BOOT, seed=0,
                       pool={"ids": run["ids"], "n_test": run["n_test"], "n_train": run["n_train"]})
    return {"a": a, "b": b, "mean": c["mean"], "ci95": c["pool"]["ci95"], "p": c["pool"]["p"],
            "corrected_t": c["corrected_t"], "protocol_ci95": c["ci95"]}


def components(run: dict[str, Any]) -> dict[str, Any]:
    seeds = [run["results"][s] for s in run["seeds"]]
    sel = [r.get("selective", {}) for r in seeds]
    pik_q = mean_se([r.get("pik_test", {}).get("question_auroc", float("nan")) for r in seeds])
    conf_q = mean_se([r.get("pik_test", {}).get("confidence_question_auroc", float("nan")) for r in seeds])
    chosen = Counter(str(x.get("pik", {}).get("probe", {}).get("chosen")) for x in sel)
    edges = sum(bool(x.get("pik", {}).get("probe", {}).get("edge_chosen")) for x in sel)
    cal = [x.get("calibrate", {}) for x in sel]
    smooth_gain = mean_se([c["oof_smoothed_accuracy"] - c["oof_raw_accuracy"] for c in cal if "oof_raw_accuracy" in c])
    smooth_min = min((c["oof_smoothed_accuracy"] - c["oof_raw_accuracy"] for c in cal if "oof_raw_accuracy" in c),
                     default=float("nan"))
    settings = Counter(f"{c['chosen']['embedding']}/k{c['chosen']['k']}/a{c['chosen']['alpha']}" if c["chosen"]["alpha"]
                       else "none" for c in cal if "chosen" in c)
    cs = Counter(str(x.get("tune", {}).get("C")) for x in sel)
    labels = {k.removeprefix("label_accuracy_"): v for k, v in
              _mean_dict([x.get("label_accuracy_w2s_train", {}) for x in sel]).items()}
    return {"pik_question_auroc": pik_q, "confidence_question_auroc": conf_q, "pik_chosen": dict(chosen),
            "pik_edge_share": edges / max(1, len(sel)), "smoothing_gain_weak_train": smooth_gain,
            "smoothing_gain_min": smooth_min, "smoothing_settings": dict(settings), "C_chosen": dict(cs),
            "label_accuracy_w2s_train": labels}


def _mean_dict(ds: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    keys = {k for d in ds for k in d}
    return {k: mean_se([d[k] for d in ds if k in d]) for k in sorted(keys)}


def _strict(o: Any) -> Any:
    """NaN/inf -> None, tuples -> lists: strict JSON."""
    if isinstance(o, dict):
        return {str(k): _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


# the label source each student trains on, for "student vs its own labels"
LABELS_OF = {"naive": "weak", "aux_conf": "weak", "self_only": "self", "smooth_only": "smoothed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs = [load_run(r) for r in args.runs]
    out: dict[str, Any] = {"regimes": {}}

    print("### Components\n")
    print("| regime (re-splits) | P(IK) q-AUROC | confidence q-AUROC | P(IK) choice (edge %) | smoothing on weak_train: "
          "label acc. change, worst re-split | smoothing chosen | C chosen |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        c = components(r)
        out["regimes"][r["name"]] = {"components": c}
        ch = ", ".join(f"{k} {v}" for k, v in sorted(c["pik_chosen"].items()))
        st = ", ".join(f"{k} {v}" for k, v in sorted(c["smoothing_settings"].items(), key=lambda kv: -kv[1]))
        print(f"| {r['name']} ({len(r['seeds'])}) | {pct(*c['pik_question_auroc'])} | {pct(*c['confidence_question_auroc'])} | "
              f"{ch} ({100 * c['pik_edge_share']:.0f}%) | {100 * c['smoothing_gain_weak_train'][0]:+.1f} ± "
              f"{100 * c['smoothing_gain_weak_train'][1]:.1f}, {100 * c['smoothing_gain_min']:+.1f} | {st} | "
              f"{', '.join(f'{k}: {v}' for k, v in sorted(c['C_chosen'].items()))} |")

    print("\n### Students against their own labels (w2s_train label accuracy → test accuracy, question level)\n")
    students = [m for m in MODELS if m not in ("weak", "zero_shot", "ceiling")]
    print("| regime | " + " | ".join(students) + " |")
    print("|---" * (len(students) + 1) + "|")
    for r in runs:
        lab = out["regimes"][r["name"]]["components"]["label_accuracy_w2s_train"]
        cells = []
        for m in students:
            src = LABELS_OF.get(m, m)
            test = mean_se([float(a.mean()) for a in r["acc"].get(m, [])])
            cells.append(f"{pct(lab[src][0]) if src in lab else '—'} → {pct(test[0])}")
        print(f"| {r['name']} | " + " | ".join(cells) + " |")

    print("\n### Test accuracy % (question level, mean ± s.e. over re-splits; oracle_pik reads w2s ground truth)\n")
    cols = [*MODELS, "best_simple"]
    print("| regime (re-splits) | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for r in runs:
        cells = [pct(*mean_se([float(a.mean()) for a in r["acc"][m]])) if m in r["acc"] else "—" for m in cols]
        print(f"| {r['name']} ({len(r['seeds'])}) | " + " | ".join(cells) + " |")
        srcs = sorted({x for s in r["sources"] for x in s})
        if len(srcs) > 1:
            for src in srcs:
                cells = []
                for m in cols:
                    if m not in r["acc"]:
                        cells.append("—")
                        continue
                    cells.append(pct(*mean_se([float(a[s == src].mean()) for a, s in zip(r["acc"][m], r["sources"])])))
                print(f"| ↳ {src} | " + " | ".join(cells) + " |")

    print(f"\n### Room for selection (the pre-registered pilot rule: oracle_pik − max(naive, aux_conf, self_only) "
          f">= {HEADROOM:.1f} points)\n")
    print("| regime | oracle_pik | max(naive, aux_conf, self_only) | headroom | passes |")
    print("|---|---|---|---|---|")
    for r in runs:
        mean = {m: float(np.mean([a.mean() for a in r["acc"][m]])) for m in ("oracle_pik", *SIMPLE) if m in r["acc"]}
        if "oracle_pik" not in mean:
            continue
        best = max(mean.get(m, float("-inf")) for m in SIMPLE)
        room = mean["oracle_pik"] - best
        out["regimes"][r["name"]]["headroom"] = room
        print(f"| {r['name']} | {pct(mean['oracle_pik'])} | {pct(best)} | {100 * room:+.1f} | "
              f"{'yes' if room >= HEADROOM / 100 else 'no'} |")

    rows = [(r, a, b) for r in runs for a, b in PRIMARY if a in r["acc"] and b in r["acc"]]
    cs = [contrast(r, a, b) for r, a, b in rows]
    for c, p in zip(cs, holm([c["p"] for c in cs])):
        c["p_holm_family"] = p
    print(f"\n### Primary contrasts, points: mean [pool-aware 95% CI], Holm p over the family of {len(cs)} "
          f"(corrected resampled t-test p beside)\n")
    print("| regime | " + " | ".join(f"{a} − {b}" for a, b in PRIMARY) + " |")
    print("|---" * (len(PRIMARY) + 1) + "|")
    by = {(r["name"], a, b): c for (r, a, b), c in zip(rows, cs)}
    for r in runs:
        cells = []
        for a, b in PRIMARY:
            c = by.get((r["name"], a, b))
            cells.append("—" if c is None else f"{100 * c['mean']:+.1f} [{100 * c['ci95'][0]:+.1f}, "
                         f"{100 * c['ci95'][1]:+.1f}] (p {c['p_holm_family']:.2g}; t {c['corrected_t']['p']:.2g})")
        print(f"| {r['name']} | " + " | ".join(cells) + " |")
    for (r, a, b), c in zip(rows, cs):
        out["regimes"][r["name"]].setdefault("contrasts", []).append(c)
    out["family_size"] = len(cs)
    if args.json:
        args.json.write_text(json.dumps(_strict(out), indent=1, allow_nan=False))
        print(f"\njson: {args.json}")


if __name__ == "__main__":
    main()
